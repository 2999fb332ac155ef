/* chat.c — chat templates (chat.h): which family a model's Jinja template belongs to, and that
 * family's rendering of a conversation, written out in C.
 *
 * Each renderer mirrors its reference template line by line (tests/data/chat/ has the
 * templates' own outputs, test_chat.c compares). The text grows in a buffer owned here until it
 * is handed to the caller. */
#include "linshard/chat.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/gguf.h"

const char *chat_template_name(chat_template_kind kind) {
    switch (kind) {
    case CHAT_TEMPLATE_CHATML:
        return "chatml";
    case CHAT_TEMPLATE_LLAMA3:
        return "llama3";
    case CHAT_TEMPLATE_LLAMA2:
        return "llama2";
    default:
        return "none";
    }
}

chat_template_kind chat_template_detect(const char *jinja) {
    if (!jinja) return CHAT_TEMPLATE_NONE;
    if (strstr(jinja, "<|im_start|>")) return CHAT_TEMPLATE_CHATML;
    if (strstr(jinja, "<|start_header_id|>")) return CHAT_TEMPLATE_LLAMA3;
    if (strstr(jinja, "[INST]")) return CHAT_TEMPLATE_LLAMA2;
    return CHAT_TEMPLATE_NONE;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The whole of a small file, malloc'd and NUL-terminated; NULL with *missing = 1 when it does
 * not exist, NULL with err otherwise. */
static char *read_file(const char *path, int *missing, char *err, size_t errlen) {
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = 1;
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        set_err(err, errlen, "%s: cannot read the file", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* tokenizer_config.json's chat_template in dir (a string; a list of named templates takes the
 * one named "default"). */
static int template_of_config(const char *dir, chat_template_kind *kind, char *err, size_t errlen) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir) >= (int)sizeof(path)) {
        set_err(err, errlen, "%s: the path is too long", dir);
        return -1;
    }
    int missing;
    char *text = read_file(path, &missing, err, errlen);
    if (!text) return missing ? 0 : -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) {
        set_err(err, errlen, "%s: not valid JSON", path);
        return -1;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsArray(t)) { /* [{"name": "default", "template": "..."}, ...] */
        const cJSON *item, *found = NULL;
        cJSON_ArrayForEach(item, t) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "name"));
            if (name && !strcmp(name, "default")) found = item;
        }
        t = found ? cJSON_GetObjectItemCaseSensitive(found, "template") : NULL;
    }
    *kind = chat_template_detect(cJSON_GetStringValue(t));
    cJSON_Delete(root);
    return 0;
}

int chat_template_of_model(const char *path, chat_template_kind *kind, char *err, size_t errlen) {
    *kind = CHAT_TEMPLATE_NONE;
    if (!path) return 0;
    size_t n = strlen(path);
    if (n < 5 || strcmp(path + n - 5, ".gguf")) return template_of_config(path, kind, err, errlen);
    gguf_file g;
    if (gguf_open(&g, path, err, errlen)) return -1;
    const char *s;
    size_t len;
    int found = gguf_find_key(&g, "tokenizer.chat_template") >= 0 &&
                !gguf_get_str(&g, "tokenizer.chat_template", &s, &len, NULL, 0);
    if (found) { /* not NUL-terminated in the file */
        char *copy = malloc(len + 1);
        if (!copy) {
            gguf_close(&g);
            set_err(err, errlen, "out of memory");
            return -1;
        }
        memcpy(copy, s, len);
        copy[len] = '\0';
        *kind = chat_template_detect(copy);
        free(copy);
    }
    gguf_close(&g);
    if (found) return 0;
    /* The tokenizer_config.json beside the file. */
    char dir[4096];
    if (n >= sizeof(dir)) {
        set_err(err, errlen, "%s: the path is too long", path);
        return -1;
    }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    return template_of_config(dir, kind, err, errlen);
}

/* ---- rendering ------------------------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* out of memory */
} text_buf;

static void put(text_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(text_buf *b, const char *s) {
    put(b, s, strlen(s));
}

/* s without leading and trailing ASCII whitespace (Jinja's trim and Python's strip on the texts
 * chat templates see), as a pointer into s and a length. */
static const char *strip(const char *s, size_t *n) {
    size_t len = strlen(s), i = 0;
    while (i < len && strchr(" \t\n\r\v\f", s[i])) i++;
    while (len > i && strchr(" \t\n\r\v\f", s[len - 1])) len--;
    *n = len - i;
    return s + i;
}

static void put_stripped(text_buf *b, const char *s) {
    size_t n;
    const char *p = strip(s, &n);
    put(b, p, n);
}

static int known_role(const char *role) {
    return !strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant");
}

/* Qwen's template (tests/data/hf/qwen3): every message as <|im_start|>ROLE\nCONTENT<|im_end|>\n,
 * contents as they are. */
static void render_chatml(text_buf *b, const chat_message *m, int n) {
    for (int i = 0; i < n; i++) {
        puts_(b, "<|im_start|>");
        puts_(b, m[i].role);
        puts_(b, "\n");
        puts_(b, m[i].content);
        puts_(b, "<|im_end|>\n");
    }
    puts_(b, "<|im_start|>assistant\n");
}

/* Llama 3's template: bos once, then a header per message and the content trimmed. */
static void render_llama3(text_buf *b, const chat_message *m, int n) {
    puts_(b, "<|begin_of_text|>");
    for (int i = 0; i < n; i++) {
        puts_(b, "<|start_header_id|>");
        puts_(b, m[i].role);
        puts_(b, "<|end_header_id|>\n\n");
        put_stripped(b, m[i].content);
        puts_(b, "<|eot_id|>");
    }
    puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Llama 2 chat's template: an optional first system message, then user and assistant turns
 * alternating, the system text inside the first user turn. */
static int render_llama2(text_buf *b, const chat_message *m, int n, char *err, size_t errlen) {
    const char *system = NULL;
    if (!strcmp(m[0].role, "system")) {
        system = m[0].content;
        m++;
        n--;
    }
    for (int i = 0; i < n; i++) {
        int want_user = i % 2 == 0;
        if ((strcmp(m[i].role, "user") == 0) != want_user) {
            set_err(err, errlen,
                    "this model's chat template (llama2) needs roles that alternate "
                    "user/assistant/user/... after an optional first system message; message %d "
                    "is '%s'",
                    i + (system ? 1 : 0), m[i].role);
            return -1;
        }
        if (want_user) {
            puts_(b, "<s>[INST] ");
            if (i == 0 && system) { /* Jinja: ('<<SYS>>\n' + system + ...).strip() */
                text_buf whole = {0};
                puts_(&whole, "<<SYS>>\n");
                puts_(&whole, system);
                puts_(&whole, "\n<</SYS>>\n\n");
                puts_(&whole, m[i].content);
                if (whole.failed) {
                    b->failed = 1;
                } else {
                    put_stripped(b, whole.data);
                }
                free(whole.data);
            } else {
                put_stripped(b, m[i].content);
            }
            puts_(b, " [/INST]");
        } else {
            puts_(b, " ");
            put_stripped(b, m[i].content);
            puts_(b, " </s>");
        }
    }
    return 0;
}

int chat_render(chat_template_kind kind, const chat_message *msgs, int n, char **out, size_t *len,
                char *err, size_t errlen) {
    *out = NULL;
    *len = 0;
    if (n < 1) {
        set_err(err, errlen, "a conversation needs at least one message");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            set_err(err, errlen, "message %d has no role or no content", i);
            return -1;
        }
        if (!known_role(msgs[i].role)) {
            set_err(err, errlen,
                    "message %d has role '%s'; the roles are 'system', 'user' and 'assistant'", i,
                    msgs[i].role);
            return -1;
        }
    }
    text_buf b = {0};
    put(&b, "", 0); /* an empty result is still a string */
    int rc = 0;
    switch (kind) {
    case CHAT_TEMPLATE_CHATML:
        render_chatml(&b, msgs, n);
        break;
    case CHAT_TEMPLATE_LLAMA3:
        render_llama3(&b, msgs, n);
        break;
    case CHAT_TEMPLATE_LLAMA2:
        rc = render_llama2(&b, msgs, n, err, errlen);
        break;
    default:
        for (int i = 0; i < n; i++) puts_(&b, msgs[i].content);
        break;
    }
    if (!rc && b.failed) {
        set_err(err, errlen, "out of memory rendering the conversation");
        rc = -1;
    }
    if (rc) {
        free(b.data);
        return -1;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}
