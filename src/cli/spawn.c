/* spawn.c — run a helper program from an argument vector, never through a shell (cli.h).
 *
 * The PyTorch and MPI peers get user strings (model directories, mpirun paths) as arguments;
 * handing those to /bin/sh would run whatever quotes or $(...) a directory name holds. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

int cli_spawn(const char *const *argv, int stderr_to_stdout, cli_line_fn on_line, void *ctx) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    /* Only the child's copy of the write end may stay open, or reading never sees EOF. */
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t actions;
    if (posix_spawn_file_actions_init(&actions) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    if (stderr_to_stdout) posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    fflush(NULL); /* nothing buffered here may come out twice or out of order */
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (err != 0) {
        close(fds[0]);
        errno = err;
        return 127; /* what a shell reports for a command it cannot run */
    }
    FILE *in = fdopen(fds[0], "r");
    if (!in) close(fds[0]);
    char *line = NULL;
    size_t cap = 0;
    while (in && getline(&line, &cap, in) >= 0)
        if (on_line) on_line(line, ctx);
    free(line);
    if (in) fclose(in);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}
