/* chat.h — chat templates: a conversation (an OpenAI "messages" array) rendered as the prompt
 * text an instruct model was trained on.
 *
 * Models carry their template as Jinja (tokenizer_config.json's "chat_template", a GGUF's
 * tokenizer.chat_template). linshard runs no Jinja: it recognises which of the few families it
 * runs the template belongs to, by the marker tokens in it, and renders that family's format in
 * C, exactly as the real templates render it (tests/data/chat holds their outputs):
 *
 *   CHAT_TEMPLATE_CHATML  Qwen:      <|im_start|>ROLE\nCONTENT<|im_end|>\n ... then
 *                                    <|im_start|>assistant\n
 *   CHAT_TEMPLATE_LLAMA3  Llama 3:   <|begin_of_text|> once, then per message
 *                                    <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>
 *                                    (CONTENT stripped of surrounding whitespace), then the
 *                                    assistant's header
 *   CHAT_TEMPLATE_LLAMA2  Llama 2 / Mistral: <s>[INST] USER [/INST] ASSISTANT </s><s>[INST] ...
 *                                    [/INST]; a first "system" message is folded into the first
 *                                    user turn as <<SYS>>\nSYSTEM\n<</SYS>>\n\n; roles must
 *                                    alternate user/assistant
 *   CHAT_TEMPLATE_NONE    GPT-2 and models without a template: the contents concatenated.
 *
 * The rendered text holds the template's special tokens as text (and its BOS, where the template
 * writes one): encode it with tokenizer_encode (special tokens matched), not
 * tokenizer_encode_prompt, which would add a second BOS. */
#ifndef LINSHARD_CHAT_H
#define LINSHARD_CHAT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CHAT_TEMPLATE_NONE = 0,
    CHAT_TEMPLATE_CHATML,
    CHAT_TEMPLATE_LLAMA3,
    CHAT_TEMPLATE_LLAMA2,
} chat_template_kind;

/* "none", "chatml", "llama3", "llama2". */
const char *chat_template_name(chat_template_kind kind);

/* The kind of a Jinja chat template, by its marker tokens: <|im_start|> ChatML,
 * <|start_header_id|> Llama 3, [INST] Llama 2; NULL, empty or none of them: NONE. */
chat_template_kind chat_template_detect(const char *jinja);

/* The chat template of the model at path: for a directory, its tokenizer_config.json's
 * chat_template; for a .gguf file, its tokenizer.chat_template, else the tokenizer_config.json
 * beside it. No file or no template: NONE (returns 0). Returns 0, or -1 with a one-line message
 * for a file that exists but cannot be read or parsed. path NULL: NONE. */
int chat_template_of_model(const char *path, chat_template_kind *kind, char *err, size_t errlen);

/* One message: role "system", "user" or "assistant"; content UTF-8 text. */
typedef struct {
    const char *role;
    const char *content;
} chat_message;

/* Renders n >= 1 messages, then the assistant's turn to speak, into a malloc'd NUL-terminated
 * string (*len bytes, not counting the NUL). Returns 0, or -1 with a one-line message naming the
 * problem (an unknown role, roles that do not alternate for Llama 2, out of memory). */
int chat_render(chat_template_kind kind, const chat_message *msgs, int n, char **out, size_t *len,
                char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
