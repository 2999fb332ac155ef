/* api.c — the OpenAI API's bodies for `linshard serve`: requests parsed and validated into a
 * serve_request, responses, stream chunks and errors written, all with cJSON.
 *
 * Validation is strict and happens here, on the HTTP thread, before anything is queued: a field
 * the server does not know, a wrong type or a value out of range is a 400 naming the field
 * ("param"), as the OpenAI API does; session_add then finds nothing left to refuse but a full
 * queue. Fields (docs/SERVING.md):
 *   both        model (string, any: one model is served), max_tokens (integer >= 1),
 *               temperature (0..2, default 1), top_p ((0, 1], default 1), top_k (integer >= 0,
 *               default 0 = all; llama.cpp's extension), seed (integer; default: a new one per
 *               request), stop (a string or an array of at most 4), n (1 only), stream (bool),
 *               stream_options ({"include_usage": bool}), user (string, ignored)
 *   completions prompt (a string, an array of one string, or an array of token ids);
 *               max_tokens defaults to 16 as in OpenAI's API
 *   chat        messages (1..256 of {"role": system|user|assistant, "content": a string or an
 *               array of {"type": "text", "text": ...}, "name": ignored}), max_completion_tokens
 *               (max_tokens' newer name); max_tokens defaults to the rest of the context
 * Text handed to JSON is valid UTF-8: a stray byte (a model can emit one) becomes U+FFFD. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

int api_fail(api_error *e, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...) {
    e->status = status;
    e->type = type;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int bad(api_error *e, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bad(api_error *e, const char *param, const char *fmt, ...) {
    e->status = 400;
    e->type = "invalid_request_error";
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    e->code = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

serve_request *serve_request_new(void) {
    serve_request *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    if (pthread_cond_init(&r->ready, NULL)) {
        free(r);
        return NULL;
    }
    r->seq = -1;
    r->refs = 1;
    return r;
}

void serve_request_free(serve_request *r) {
    if (!r) return;
    for (int i = 0; i < SESSION_MAX_STOPS; i++) free(r->stops[i]);
    free(r->prompt);
    free(r->text);
    pthread_cond_destroy(&r->ready);
    free(r);
}

/* ---- field checks ---------------------------------------------------------------------------- */

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

/* An integer in [lo, hi] (a JSON number with no fraction). */
static int get_int(const cJSON *v, const char *name, double lo, double hi, long long *out,
                   api_error *e) {
    if (!cJSON_IsNumber(v))
        return bad(e, name, "'%s' must be an integer, got %s", name, json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return bad(e, name, "'%s' must be an integer, got %g", name, d);
    if (d < lo || d > hi)
        return bad(e, name, "'%s' must be in %.0f..%.0f, got %.0f", name, lo, hi, d);
    *out = (long long)d;
    return 0;
}

static int get_number(const cJSON *v, const char *name, double *out, api_error *e) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(e, name, "'%s' must be a number, got %s", name, json_type_name(v));
    *out = v->valuedouble;
    return 0;
}

/* A copy of s of len bytes with invalid UTF-8 (and NUL, which a C string cannot hold) replaced by
 * U+FFFD, NUL-terminated; NULL when out of memory. */
static char *valid_utf8(const char *s, size_t len) {
    char *out = malloc(3 * len + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = n > 0 && c != 0 && p + n <= end;
        for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xC0) == 0x80;
        if (ok && n > 1) { /* overlong forms, surrogates, beyond U+10FFFF */
            unsigned cp = n == 2   ? ((c & 0x1F) << 6) | (p[1] & 0x3F)
                          : n == 3 ? ((c & 0x0F) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3F)
                                   : ((c & 0x07) << 18) | ((p[1] & 0x3Fu) << 12) |
                                         ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3F);
            ok = (n == 2 && cp >= 0x80) ||
                 (n == 3 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ||
                 (n == 4 && cp >= 0x10000 && cp <= 0x10FFFF);
        }
        if (ok) {
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        }
    }
    *o = '\0';
    return out;
}

/* Whether a JSON string's bytes are one C string (no NUL inside) of valid UTF-8: cJSON keeps
 * what \u escapes decode to, so check what reaches the tokenizer. */
static int checked_text(const cJSON *v, const char *name, api_error *e) {
    const char *s = v->valuestring;
    char *clean = valid_utf8(s, strlen(s));
    if (!clean) return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    int same = !strcmp(clean, s);
    free(clean);
    return same ? 0 : bad(e, name, "'%s' is not valid UTF-8", name);
}

/* "stop": a string or an array of at most SESSION_MAX_STOPS strings, each 1..256 bytes. */
static int parse_stop(const cJSON *v, serve_request *r, api_error *e) {
    if (cJSON_IsNull(v)) return 0;
    const cJSON *one = v, *item;
    int count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    if (!cJSON_IsString(v) && !cJSON_IsArray(v))
        return bad(e, "stop", "'stop' must be a string or an array of strings, got %s",
                   json_type_name(v));
    if (count > SESSION_MAX_STOPS)
        return bad(e, "stop", "'stop' has %d strings; at most %d", count, SESSION_MAX_STOPS);
    int i = 0;
    if (cJSON_IsArray(v)) one = NULL;
    for (item = one ? one : v->child; item; item = one ? NULL : item->next) {
        if (!cJSON_IsString(item))
            return bad(e, "stop", "'stop' must hold strings, got %s", json_type_name(item));
        size_t n = strlen(item->valuestring);
        if (n < 1 || n > SESSION_MAX_STOP_BYTES)
            return bad(e, "stop", "each 'stop' string must be 1..%d bytes, got %zu",
                       SESSION_MAX_STOP_BYTES, n);
        if (checked_text(item, "stop", e)) return -1;
        r->stops[i] = strdup(item->valuestring);
        if (!r->stops[i]) return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        i++;
    }
    r->params.n_stop = i;
    r->params.stop = (const char *const *)r->stops;
    return 0;
}

/* "content": a string, or an array of {"type": "text", "text": ...} parts (joined). malloc'd. */
static char *message_content(const cJSON *c, int index, api_error *e) {
    if (cJSON_IsString(c)) {
        if (checked_text(c, "messages", e)) return NULL;
        char *s = strdup(c->valuestring);
        if (!s) api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return s;
    }
    if (!cJSON_IsArray(c)) {
        bad(e, "messages",
            "messages[%d].content must be a string or an array of text parts, got %s", index,
            json_type_name(c));
        return NULL;
    }
    size_t total = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
            !cJSON_IsString(text)) {
            bad(e, "messages",
                "messages[%d].content parts must be {\"type\": \"text\", \"text\": ...}: this "
                "server takes text only",
                index);
            return NULL;
        }
        if (checked_text(text, "messages", e)) return NULL;
        total += strlen(text->valuestring);
    }
    char *s = malloc(total + 1);
    if (!s) {
        api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    s[0] = '\0';
    size_t at = 0;
    cJSON_ArrayForEach(part, c) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(s + at, t, n + 1);
        at += n;
    }
    return s;
}

/* "messages" rendered with the model's chat template and tokenized (the template writes BOS
 * where it has one; without a template the prompt gets BOS as a completion's would). */
static int parse_messages(const cJSON *v, const api_model *m, serve_request *r, api_error *e) {
    if (!cJSON_IsArray(v))
        return bad(e, "messages", "'messages' must be an array, got %s", json_type_name(v));
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > SERVE_MAX_MESSAGES)
        return bad(e, "messages", "'messages' must hold 1..%d messages, got %d", SERVE_MAX_MESSAGES,
                   n);
    chat_message *msgs = calloc((size_t)n, sizeof(*msgs));
    char **contents = calloc((size_t)n, sizeof(*contents));
    int rc = -1, i = 0;
    if (!msgs || !contents) {
        api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    const cJSON *msg;
    cJSON_ArrayForEach(msg, v) {
        if (!cJSON_IsObject(msg)) {
            bad(e, "messages", "messages[%d] must be an object, got %s", i, json_type_name(msg));
            goto done;
        }
        const cJSON *field, *role = NULL, *content = NULL;
        cJSON_ArrayForEach(field, msg) {
            if (!strcmp(field->string, "role"))
                role = field;
            else if (!strcmp(field->string, "content"))
                content = field;
            else if (!strcmp(field->string, "name")) {
                if (!cJSON_IsString(field)) {
                    bad(e, "messages", "messages[%d].name must be a string", i);
                    goto done;
                }
            } else {
                bad(e, "messages", "messages[%d] has an unknown field '%s'", i, field->string);
                goto done;
            }
        }
        if (!cJSON_IsString(role)) {
            bad(e, "messages", "messages[%d].role must be a string", i);
            goto done;
        }
        if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
            strcmp(role->valuestring, "assistant")) {
            bad(e, "messages", "messages[%d].role '%.64s' is not one of system, user, assistant", i,
                role->valuestring);
            goto done;
        }
        if (!content) {
            bad(e, "messages", "messages[%d] has no content", i);
            goto done;
        }
        if (!(contents[i] = message_content(content, i, e))) goto done;
        msgs[i].role = role->valuestring;
        msgs[i].content = contents[i];
        i++;
    }
    char *text = NULL, err[256];
    size_t len = 0;
    if (chat_render(m->chat_template, msgs, n, &text, &len, err, sizeof(err))) {
        bad(e, "messages", "%s", err);
        goto done;
    }
    size_t n_ids = 0;
    int enc = m->chat_template == CHAT_TEMPLATE_NONE
                  ? tokenizer_encode_prompt(m->tok, text, len, &r->prompt, &n_ids)
                  : tokenizer_encode(m->tok, text, len, &r->prompt, &n_ids);
    free(text);
    if (enc) {
        api_fail(e, 500, "server_error", NULL, NULL, "out of memory tokenizing the messages");
        goto done;
    }
    r->n_prompt = (int)n_ids;
    rc = 0;
done:
    for (int k = 0; contents && k < n; k++) free(contents[k]);
    free(contents);
    free(msgs);
    return rc;
}

/* "prompt": a string, an array of one string, or an array of token ids. */
static int parse_prompt(const cJSON *v, const api_model *m, serve_request *r, api_error *e) {
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(v->child)) v = v->child;
    if (cJSON_IsString(v)) {
        if (checked_text(v, "prompt", e)) return -1;
        size_t n_ids = 0;
        if (tokenizer_encode_prompt(m->tok, v->valuestring, strlen(v->valuestring), &r->prompt,
                                    &n_ids))
            return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        r->n_prompt = (int)n_ids;
        return 0;
    }
    if (!cJSON_IsArray(v))
        return bad(e, "prompt", "'prompt' must be a string or an array of token ids, got %s",
                   json_type_name(v));
    int n = cJSON_GetArraySize(v), i = 0;
    if (n > m->context) n = m->context; /* longer is refused below by its count */
    r->prompt = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!r->prompt) return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        long long id;
        if (!cJSON_IsNumber(item))
            return bad(e, "prompt",
                       "'prompt' must be a string or an array of token ids; "
                       "prompt[%d] is %s",
                       i, json_type_name(item));
        if (get_int(item, "prompt", 0, m->vocab_size - 1, &id, e)) {
            snprintf(e->message, sizeof(e->message),
                     "prompt[%d] = %g is no token id of this model (0..%d)", i, item->valuedouble,
                     m->vocab_size - 1);
            return -1;
        }
        if (i < n) r->prompt[i] = (int)id;
        i++;
    }
    r->n_prompt = i;
    return 0;
}

static atomic_ullong request_counter;

/* Whether a JSON text holds the escape \u0000: cJSON would end that string at the NUL and the
 * rest of it would silently vanish from the prompt. (A backslash occurs only inside strings in
 * valid JSON, and each escape is skipped whole, so "\\u0000" -- an escaped backslash, then
 * text -- is not one.) */
static int has_nul_escape(const char *s, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < len && !memcmp(s + i + 2, "0000", 4)) return 1;
        i++; /* the escaped character */
    }
    return 0;
}

int api_parse_request(const char *body, size_t len, int chat, const api_model *m, serve_request *r,
                      api_error *e) {
    if (has_nul_escape(body, len)) return bad(e, NULL, "strings may not contain NUL (\\u0000)");
    /* The error's place from return_parse_end: cJSON_GetErrorPtr is one global, written by every
     * parse, and HTTP threads parse at once. */
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &parse_end, 0);
    if (!root)
        return bad(e, NULL, "the body is not valid JSON (near byte %ld)",
                   parse_end ? (long)(parse_end - body) : 0L);
    int rc = -1;
    const cJSON *prompt = NULL, *field;
    long long v;
    double d = 0;
    int have_max = 0, have_seed = 0;
    r->chat = chat;
    r->params.sampling = (sampling_opts){1.0f, 0, 1.0f};
    r->params.max_tokens = 16;
    if (!cJSON_IsObject(root)) {
        bad(e, NULL, "the body must be a JSON object, got %s", json_type_name(root));
        goto done;
    }
    cJSON_ArrayForEach(field, root) {
        const char *k = field->string;
        if (cJSON_IsNull(field) && strcmp(k, chat ? "messages" : "prompt")) continue; /* default */
        if (!strcmp(k, chat ? "messages" : "prompt")) {
            prompt = field;
        } else if (!strcmp(k, "model") || !strcmp(k, "user")) {
            if (!cJSON_IsString(field)) {
                bad(e, k, "'%s' must be a string, got %s", k, json_type_name(field));
                goto done;
            }
        } else if (!strcmp(k, "max_tokens") || (chat && !strcmp(k, "max_completion_tokens"))) {
            if (get_int(field, k, 1, 1 << 30, &v, e)) goto done;
            r->params.max_tokens = (int)v;
            have_max = 1;
        } else if (!strcmp(k, "temperature")) {
            if (get_number(field, k, &d, e)) goto done;
            if (d < 0 || d > 2) {
                bad(e, k, "'temperature' must be in [0, 2], got %g", d);
                goto done;
            }
            r->params.sampling.temperature = (float)d;
        } else if (!strcmp(k, "top_p")) {
            if (get_number(field, k, &d, e)) goto done;
            if (!(d > 0 && d <= 1)) {
                bad(e, k, "'top_p' must be in (0, 1], got %g", d);
                goto done;
            }
            r->params.sampling.top_p = (float)d;
        } else if (!strcmp(k, "top_k")) {
            if (get_int(field, k, 0, m->vocab_size, &v, e)) goto done;
            r->params.sampling.top_k = (int)v;
        } else if (!strcmp(k, "seed")) {
            /* Integers JSON numbers hold exactly (OpenAI's seed is a 64-bit integer). */
            if (get_int(field, k, -9007199254740992.0, 9007199254740992.0, &v, e)) goto done;
            r->params.seed = (uint64_t)v;
            have_seed = 1;
        } else if (!strcmp(k, "stop")) {
            if (parse_stop(field, r, e)) goto done;
        } else if (!strcmp(k, "n")) {
            if (get_int(field, k, 1, 1, &v, e)) {
                bad(e, k, "'n' must be 1: this server returns one choice per request");
                goto done;
            }
        } else if (!strcmp(k, "stream")) {
            if (!cJSON_IsBool(field)) {
                bad(e, k, "'stream' must be a boolean, got %s", json_type_name(field));
                goto done;
            }
            r->stream = cJSON_IsTrue(field);
        } else if (!strcmp(k, "stream_options")) {
            const cJSON *opt;
            if (!cJSON_IsObject(field)) {
                bad(e, k, "'stream_options' must be an object, got %s", json_type_name(field));
                goto done;
            }
            cJSON_ArrayForEach(opt, field) {
                if (strcmp(opt->string, "include_usage") || !cJSON_IsBool(opt)) {
                    bad(e, k, "'stream_options' takes one field, include_usage (a boolean)");
                    goto done;
                }
                r->include_usage = cJSON_IsTrue(opt);
            }
        } else {
            bad(e, k, "unknown field '%.64s'", k);
            goto done;
        }
    }
    if (r->include_usage && !r->stream) {
        bad(e, "stream_options", "'stream_options' is only allowed with \"stream\": true");
        goto done;
    }
    const char *what = chat ? "messages" : "prompt";
    if (!prompt) {
        bad(e, what, "'%s' is required", what);
        goto done;
    }
    if (chat ? parse_messages(prompt, m, r, e) : parse_prompt(prompt, m, r, e)) goto done;
    if (r->n_prompt == 0) { /* unconditional text starts from BOS (GPT-2: <|endoftext|>) */
        int start = tokenizer_bos(m->tok) >= 0 ? tokenizer_bos(m->tok) : tokenizer_eos(m->tok);
        if (start < 0) {
            bad(e, what,
                "the prompt is empty and this model has no BOS or EOS token to start from");
            goto done;
        }
        free(r->prompt);
        if (!(r->prompt = malloc(sizeof(int)))) {
            api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            goto done;
        }
        r->prompt[0] = start;
        r->n_prompt = 1;
    }
    if (r->n_prompt > m->context - 1) {
        api_fail(e, 400, "invalid_request_error", what, "context_length_exceeded",
                 "the prompt is %d tokens; this server's context is %d positions, which leaves "
                 "room for prompts of at most %d tokens",
                 r->n_prompt, m->context, m->context - 1);
        goto done;
    }
    if (chat && !have_max) r->params.max_tokens = m->context - r->n_prompt;
    if (!have_seed) /* a new stream per request, as OpenAI samples afresh */
        r->params.seed =
            (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + atomic_fetch_add(&request_counter, 1);
    unsigned long long number = atomic_fetch_add(&request_counter, 1);
    snprintf(r->id, sizeof(r->id), "%s-%llu", chat ? "chatcmpl" : "cmpl", number);
    r->created = (long long)time(NULL);
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- responses ---------------------------------------------------------------------------------
 */

static char *print_and_free(cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *api_error_json(const api_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    char *msg = valid_utf8(e->message, strlen(e->message));
    cJSON_AddStringToObject(err, "message", msg ? msg : "");
    free(msg);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0])
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code)
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    return print_and_free(root);
}

static void add_usage(cJSON *root, const serve_request *r) {
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt_used);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt_used + r->n_generated);
}

static cJSON *envelope(const serve_request *r, const char *model_id, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", model_id);
    return root;
}

/* OpenAI's finish_reason: "stop" (EOS, a stop string), "length" (max_tokens, the context). */
static void add_finish(cJSON *choice, session_finish_reason finish) {
    if (finish == SESSION_RUNNING)
        cJSON_AddNullToObject(choice, "finish_reason");
    else
        cJSON_AddStringToObject(choice, "finish_reason", session_finish_name(finish));
}

char *api_response_json(const serve_request *r, const char *model_id, const char *text,
                        size_t text_len) {
    char *clean = valid_utf8(text ? text : "", text ? text_len : 0);
    if (!clean) return NULL;
    cJSON *root = envelope(r, model_id, r->chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (r->chat) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", clean);
    } else {
        cJSON_AddStringToObject(c, "text", clean);
    }
    cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, r->finish);
    add_usage(root, r);
    free(clean);
    return print_and_free(root);
}

char *api_chunk_json(const serve_request *r, const char *model_id, const char *text,
                     size_t text_len, int first, session_finish_reason finish, int usage_only) {
    char *clean = valid_utf8(text ? text : "", text ? text_len : 0);
    if (!clean) return NULL;
    cJSON *root = envelope(r, model_id, r->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    if (!usage_only) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(choices, c);
        cJSON_AddNumberToObject(c, "index", 0);
        if (r->chat) {
            cJSON *delta = cJSON_AddObjectToObject(c, "delta");
            if (first) cJSON_AddStringToObject(delta, "role", "assistant");
            if (finish == SESSION_RUNNING) cJSON_AddStringToObject(delta, "content", clean);
        } else {
            cJSON_AddStringToObject(c, "text", clean);
        }
        cJSON_AddNullToObject(c, "logprobs");
        add_finish(c, finish);
    }
    if (usage_only)
        add_usage(root, r);
    else if (r->include_usage)
        cJSON_AddNullToObject(root, "usage"); /* OpenAI: null on every chunk but the last */
    free(clean);
    return print_and_free(root);
}

char *api_models_json(const char *model_id, long long created) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "linshard");
    return print_and_free(root);
}
