#include "cli.h"
int cmd_serve(int argc, char **argv) { (void)argc; (void)argv; return 0; }
