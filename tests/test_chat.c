/* test_chat.c — chat templates (chat.h) against the real templates' own renderings
 * (tests/data/chat/chat_template_vectors.json, made by make_chat_vectors.py with Jinja2), the
 * detection of a model's template from its tokenizer_config.json, and the refusals. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linshard/chat.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static chat_template_kind kind_named(const char *name) {
    if (!strcmp(name, "chatml")) return CHAT_TEMPLATE_CHATML;
    if (!strcmp(name, "llama3")) return CHAT_TEMPLATE_LLAMA3;
    if (!strcmp(name, "llama2")) return CHAT_TEMPLATE_LLAMA2;
    return CHAT_TEMPLATE_NONE;
}

/* Every vector: the same bytes as the template rendered by Jinja2. */
static void test_vectors(void **state) {
    (void)state;
    char *text = slurp(CHAT_VECTORS);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    int count = 0, kinds_seen[4] = {0};
    const cJSON *v;
    cJSON_ArrayForEach(v, root) {
        const char *name = cJSON_GetObjectItem(v, "template")->valuestring;
        const char *want = cJSON_GetObjectItem(v, "text")->valuestring;
        const cJSON *msgs = cJSON_GetObjectItem(v, "messages");
        chat_message m[8];
        int n = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, msgs) {
            assert_true(n < 8);
            m[n].role = cJSON_GetObjectItem(item, "role")->valuestring;
            m[n].content = cJSON_GetObjectItem(item, "content")->valuestring;
            n++;
        }
        char *got, err[256];
        size_t len;
        chat_template_kind kind = kind_named(name);
        assert_int_equal(chat_render(kind, m, n, &got, &len, err, sizeof(err)), 0);
        if (strcmp(got, want)) fprintf(stderr, "%s: got\n%s\nwant\n%s\n", name, got, want);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
        free(got);
        kinds_seen[kind] = 1;
        count++;
    }
    cJSON_Delete(root);
    assert_int_equal(count, 15);
    assert_true(kinds_seen[CHAT_TEMPLATE_CHATML] && kinds_seen[CHAT_TEMPLATE_LLAMA3] &&
                kinds_seen[CHAT_TEMPLATE_LLAMA2]);
}

/* GPT-2 has no template: the contents, concatenated. */
static void test_none(void **state) {
    (void)state;
    chat_message m[] = {
        {"system", "In the beginning"}, {"user", " was the"}, {"assistant", ""}, {"user", " word"}};
    char *got, err[256];
    size_t len;
    assert_int_equal(chat_render(CHAT_TEMPLATE_NONE, m, 4, &got, &len, err, sizeof(err)), 0);
    assert_string_equal(got, "In the beginning was the word");
    free(got);
}

static void test_detect(void **state) {
    (void)state;
    assert_int_equal(chat_template_detect(NULL), CHAT_TEMPLATE_NONE);
    assert_int_equal(chat_template_detect(""), CHAT_TEMPLATE_NONE);
    assert_int_equal(chat_template_detect("{{ messages }}"), CHAT_TEMPLATE_NONE);
    assert_int_equal(chat_template_detect("{{ '<|im_start|>' }}"), CHAT_TEMPLATE_CHATML);
    assert_int_equal(chat_template_detect("'<|start_header_id|>'"), CHAT_TEMPLATE_LLAMA3);
    assert_int_equal(chat_template_detect("'[INST] ' + content"), CHAT_TEMPLATE_LLAMA2);
    assert_string_equal(chat_template_name(CHAT_TEMPLATE_LLAMA3), "llama3");
    /* The real tokenizer_config.json files (unpacked from tests/data/hf by CMake). */
    char err[256];
    chat_template_kind kind;
    assert_int_equal(chat_template_of_model(HF_TOKENIZERS "/llama3", &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, CHAT_TEMPLATE_LLAMA3);
    assert_int_equal(chat_template_of_model(HF_TOKENIZERS "/qwen3", &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, CHAT_TEMPLATE_CHATML);
    /* Mistral's file has no chat_template; a directory without the file has none either. */
    assert_int_equal(chat_template_of_model(HF_TOKENIZERS "/mistral", &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, CHAT_TEMPLATE_NONE);
    assert_int_equal(chat_template_of_model("/nonexistent-dir", &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, CHAT_TEMPLATE_NONE);
    assert_int_equal(chat_template_of_model(NULL, &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, CHAT_TEMPLATE_NONE);
}

static void test_refusals(void **state) {
    (void)state;
    char *got = (char *)1, err[256];
    size_t len;
    chat_message bad_role[] = {{"user", "hi"}, {"tool", "42"}};
    assert_int_equal(chat_render(CHAT_TEMPLATE_CHATML, bad_role, 2, &got, &len, err, sizeof(err)),
                     -1);
    assert_null(got);
    assert_non_null(strstr(err, "role 'tool'"));
    chat_message twice[] = {{"user", "hi"}, {"user", "again"}};
    assert_int_equal(chat_render(CHAT_TEMPLATE_LLAMA2, twice, 2, &got, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "alternate"));
    chat_message first_assistant[] = {{"system", "s"}, {"assistant", "a"}};
    assert_int_equal(
        chat_render(CHAT_TEMPLATE_LLAMA2, first_assistant, 2, &got, &len, err, sizeof(err)), -1);
    assert_int_equal(chat_render(CHAT_TEMPLATE_LLAMA3, bad_role, 0, &got, &len, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "at least one message"));
    chat_message no_content[] = {{"user", NULL}};
    assert_int_equal(chat_render(CHAT_TEMPLATE_NONE, no_content, 1, &got, &len, err, sizeof(err)),
                     -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
