/* image.c — a finished tokenizer's tables laid out flat in one byte buffer (a "tokenizer
 * image"), and a tokenizer that reads them in place.
 *
 * Why: building GPT-2's tables from encoder.json and vocab.bpe (hashing 50,257 tokens and
 * 50,000 merges, then checking the merges) took ~28 ms of every `linshard generate`. The build
 * runs tools/make_tokenizer_image once, which writes the finished tables with
 * tokenizer_image_write; builtin.c embeds that file in the program, and tokenizer_image_open
 * only points a struct tokenizer at the embedded bytes: no copy, no hashing, pages fault in as
 * they are touched.
 *
 * The image is an internal build artefact, not a user format: it is written and read by the
 * same build of the same source (sizeof(size_t), byte order and struct layouts are this
 * machine's), and nothing promises that another version can read it. Still, opening checks the
 * header (magic, version, sizes, byte order) and that every section lies inside the buffer,
 * aligned, with exactly the size the scalars imply, and the small tables' ids (byte_id, added,
 * stop, bos, eos, unk) are in range: a wrong or truncated image is a one-line error, never a
 * crash. The large tables (token offsets, the two hash maps) are trusted as written: checking
 * them would touch every page, which is the cost the image exists to avoid.
 *
 * Layout (all offsets from the start of the buffer, which must be 16-byte aligned):
 *   image_header                  magic "LSTOKIMG", version, sizeof(size_t), byte-order mark,
 *                                 the scalar fields, byte_id[256], added_first[256], and each
 *                                 section's (offset, bytes)
 *   sections, in this order, each at a multiple of 16, zero bytes between:
 *     pool        pool_used chars          token keys
 *     tok_off     n_vocab size_t           key offsets into pool
 *     tok_len     n_vocab int              key lengths (-1: no token)
 *     dpool       chars (0 bytes: none)    decoded bytes (SentencePiece only)
 *     dec_off     n_vocab size_t or 0      offsets into dpool
 *     dec_len     n_vocab int or 0         decoded lengths
 *     vocab_slot  2 * vocab_cap int32      the vocabulary's hash map
 *     merges      merge_cap merge_slot     the merges' hash map
 *     added       n_added added_token      added tokens, longest first
 *     stop        n_stop int               stop ids besides eos */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define IMAGE_MAGIC "LSTOKIMG"
#define IMAGE_VERSION 1u
#define IMAGE_BYTE_ORDER 0x01020304u /* reads back as 0x04030201 on the other byte order */
#define IMAGE_ALIGN 16u

enum {
    SEC_POOL,
    SEC_TOK_OFF,
    SEC_TOK_LEN,
    SEC_DPOOL,
    SEC_DEC_OFF,
    SEC_DEC_LEN,
    SEC_VOCAB_SLOT,
    SEC_MERGES,
    SEC_ADDED,
    SEC_STOP,
    N_SECTIONS
};
static const char *const section_name[N_SECTIONS] = {"pool",    "tok_off", "tok_len",    "dpool",
                                                     "dec_off", "dec_len", "vocab_slot", "merges",
                                                     "added",   "stop"};

/* Fixed-width fields only, largest first within each group, so the struct has no padding and
 * is copied in and out with memcpy (the buffer need not be aligned for it). */
typedef struct {
    char magic[8];
    uint32_t version, size_t_bytes, byte_order, header_bytes;
    uint64_t total_bytes; /* the whole image */
    uint64_t pool_used, vocab_cap, merge_cap;
    uint64_t sec_off[N_SECTIONS], sec_bytes[N_SECTIONS];
    int32_t n_vocab, bos, eos, adds_bos;
    int32_t family, pattern, nfc, ignore_merges;
    int32_t sp_prepend, sp_split, sp_strip, byte_fallback;
    int32_t unk, fuse_unk, max_token_bytes, heap_ok;
    int32_t heap_always, n_merges, n_added, n_stop;
    int32_t byte_id[256];
    unsigned char added_first[256];
} image_header;

static size_t align_up(size_t n) {
    return (n + IMAGE_ALIGN - 1) & ~(size_t)(IMAGE_ALIGN - 1);
}

/* The bytes of each section of t, in sec_bytes. */
static void section_sizes(const tokenizer *t, uint64_t sec_bytes[N_SECTIONS]) {
    size_t nv = (size_t)t->n_vocab, dpool_bytes = 0;
    if (t->dpool)
        for (size_t i = 0; i < nv; i++)
            if (t->dec_len[i] > 0 && t->dec_off[i] + (size_t)t->dec_len[i] > dpool_bytes)
                dpool_bytes = t->dec_off[i] + (size_t)t->dec_len[i];
    sec_bytes[SEC_POOL] = t->pool_used;
    sec_bytes[SEC_TOK_OFF] = nv * sizeof(size_t);
    sec_bytes[SEC_TOK_LEN] = nv * sizeof(int);
    sec_bytes[SEC_DPOOL] = dpool_bytes;
    sec_bytes[SEC_DEC_OFF] = dpool_bytes ? nv * sizeof(size_t) : 0;
    sec_bytes[SEC_DEC_LEN] = dpool_bytes ? nv * sizeof(int) : 0;
    sec_bytes[SEC_VOCAB_SLOT] = 2 * t->vocab_cap * sizeof(int32_t);
    sec_bytes[SEC_MERGES] = t->merge_cap * sizeof(merge_slot);
    sec_bytes[SEC_ADDED] = (size_t)t->n_added * sizeof(added_token);
    sec_bytes[SEC_STOP] = (size_t)t->n_stop * sizeof(int);
}

/* The header of t's image, section offsets and total size filled in. */
static void make_header(const tokenizer *t, image_header *h) {
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, IMAGE_MAGIC, 8);
    h->version = IMAGE_VERSION;
    h->size_t_bytes = (uint32_t)sizeof(size_t);
    h->byte_order = IMAGE_BYTE_ORDER;
    h->header_bytes = (uint32_t)sizeof(image_header);
    h->pool_used = t->pool_used;
    h->vocab_cap = t->vocab_cap;
    h->merge_cap = t->merge_cap;
    section_sizes(t, h->sec_bytes);
    size_t at = align_up(sizeof(image_header));
    for (int s = 0; s < N_SECTIONS; s++) {
        h->sec_off[s] = at;
        at = align_up(at + h->sec_bytes[s]);
    }
    h->total_bytes = at;
    h->n_vocab = t->n_vocab;
    h->bos = t->bos;
    h->eos = t->eos;
    h->adds_bos = t->adds_bos;
    h->family = t->family;
    h->pattern = t->pattern;
    h->nfc = t->nfc;
    h->ignore_merges = t->ignore_merges;
    h->sp_prepend = t->sp_prepend;
    h->sp_split = t->sp_split;
    h->sp_strip = t->sp_strip;
    h->byte_fallback = t->byte_fallback;
    h->unk = t->unk;
    h->fuse_unk = t->fuse_unk;
    h->max_token_bytes = t->max_token_bytes;
    h->heap_ok = t->heap_ok;
    h->heap_always = t->heap_always;
    h->n_merges = t->n_merges;
    h->n_added = t->n_added;
    h->n_stop = t->n_stop;
    for (int b = 0; b < 256; b++) h->byte_id[b] = t->byte_id[b];
    memcpy(h->added_first, t->added_first, 256);
}

size_t tokenizer_image_size(const tokenizer *t) {
    image_header h;
    make_header(t, &h);
    return (size_t)h.total_bytes;
}

int tokenizer_image_write(const tokenizer *t, void *buf, size_t cap, char *err, size_t errlen) {
    image_header h;
    make_header(t, &h);
    if (cap < h.total_bytes) {
        snprintf(err, errlen, "tokenizer image: needs %llu bytes, the buffer has %zu",
                 (unsigned long long)h.total_bytes, cap);
        return -1;
    }
    unsigned char *out = buf;
    memset(out, 0, (size_t)h.total_bytes); /* the padding too: the same tables, the same bytes */
    memcpy(out, &h, sizeof(h));
    const void *src[N_SECTIONS] = {t->pool,       t->tok_off, t->tok_len,
                                   t->dpool,      t->dec_off, t->dec_len,
                                   t->vocab_slot, t->merges,  NULL /* added: below */,
                                   t->stop};
    for (int s = 0; s < N_SECTIONS; s++)
        if (h.sec_bytes[s] && src[s]) memcpy(out + h.sec_off[s], src[s], (size_t)h.sec_bytes[s]);
    /* Added tokens field by field: the struct's padding bytes are indeterminate in memory. */
    for (int i = 0; i < t->n_added; i++) {
        added_token a;
        memset(&a, 0, sizeof(a));
        a.id = t->added[i].id;
        a.len = t->added[i].len;
        a.special = t->added[i].special;
        a.lstrip = t->added[i].lstrip;
        a.rstrip = t->added[i].rstrip;
        memcpy(out + h.sec_off[SEC_ADDED] + (size_t)i * sizeof(a), &a, sizeof(a));
    }
    return 0;
}

/* Whether id names a token slot (or is -1 where allow_none). */
static int id_ok(int id, int n_vocab, int allow_none) {
    return (allow_none && id == -1) || (id >= 0 && id < n_vocab);
}

static int is_pow2(uint64_t n) {
    return n && !(n & (n - 1));
}

/* Checks everything about the header that does not depend on the sections' contents. */
static int check_header(const image_header *h, size_t len, char *err, size_t errlen) {
    if (memcmp(h->magic, IMAGE_MAGIC, 8)) {
        snprintf(err, errlen, "tokenizer image: bad magic (not a linshard tokenizer image)");
        return -1;
    }
    if (h->version != IMAGE_VERSION) {
        snprintf(err, errlen, "tokenizer image: format version %u, this build reads version %u",
                 h->version, IMAGE_VERSION);
        return -1;
    }
    if (h->byte_order != IMAGE_BYTE_ORDER) {
        snprintf(err, errlen, "tokenizer image: written on a machine of the other byte order");
        return -1;
    }
    if (h->size_t_bytes != sizeof(size_t) || h->header_bytes != sizeof(image_header)) {
        snprintf(err, errlen,
                 "tokenizer image: written by another build (size_t of %u bytes, header of %u; "
                 "here %zu and %zu)",
                 h->size_t_bytes, h->header_bytes, sizeof(size_t), sizeof(image_header));
        return -1;
    }
    if (h->total_bytes != len) {
        snprintf(err, errlen, "tokenizer image: %s (%zu bytes, its header says %llu)",
                 len < h->total_bytes ? "truncated" : "trailing bytes", len,
                 (unsigned long long)h->total_bytes);
        return -1;
    }
    if (h->n_vocab <= 0 || h->n_merges < 0 || h->n_added < 0 || h->n_stop < 0 ||
        !is_pow2(h->vocab_cap) || h->vocab_cap <= (uint64_t)h->n_vocab ||
        (h->merge_cap && !is_pow2(h->merge_cap)) || h->merge_cap < (uint64_t)h->n_merges ||
        (h->n_merges && h->merge_cap <= (uint64_t)h->n_merges) || h->max_token_bytes < 0 ||
        h->family < FAMILY_BYTE_LEVEL || h->family > FAMILY_SENTENCEPIECE) {
        snprintf(err, errlen, "tokenizer image: the header's counts are out of range");
        return -1;
    }
    if (!id_ok(h->bos, h->n_vocab, 1) || !id_ok(h->eos, h->n_vocab, 1) ||
        !id_ok(h->unk, h->n_vocab, 1)) {
        snprintf(err, errlen, "tokenizer image: bos, eos or unk is not a token id");
        return -1;
    }
    for (int b = 0; b < 256; b++)
        if (!id_ok(h->byte_id[b], h->n_vocab, 1)) {
            snprintf(err, errlen, "tokenizer image: byte 0x%02x's token %d is not a token id", b,
                     h->byte_id[b]);
            return -1;
        }
    /* What each section must hold, from the scalars. */
    uint64_t nv = (uint64_t)h->n_vocab, has_dec = h->sec_bytes[SEC_DPOOL] != 0;
    uint64_t want[N_SECTIONS] = {h->pool_used,
                                 nv * sizeof(size_t),
                                 nv * sizeof(int),
                                 h->sec_bytes[SEC_DPOOL],
                                 has_dec ? nv * sizeof(size_t) : 0,
                                 has_dec ? nv * sizeof(int) : 0,
                                 2 * h->vocab_cap * sizeof(int32_t),
                                 h->merge_cap * sizeof(merge_slot),
                                 (uint64_t)h->n_added * sizeof(added_token),
                                 (uint64_t)h->n_stop * sizeof(int)};
    for (int s = 0; s < N_SECTIONS; s++) {
        uint64_t off = h->sec_off[s], n = h->sec_bytes[s];
        if (n != want[s]) {
            snprintf(err, errlen, "tokenizer image: section %s has %llu bytes, expected %llu",
                     section_name[s], (unsigned long long)n, (unsigned long long)want[s]);
            return -1;
        }
        if (off % IMAGE_ALIGN || off < sizeof(image_header)) {
            snprintf(err, errlen,
                     "tokenizer image: section %s at offset %llu (not after the header on a "
                     "multiple of %u)",
                     section_name[s], (unsigned long long)off, IMAGE_ALIGN);
            return -1;
        }
        if (off > len || n > len - off) {
            snprintf(err, errlen,
                     "tokenizer image: section %s (%llu bytes at offset %llu) runs past the end "
                     "(%zu bytes)",
                     section_name[s], (unsigned long long)n, (unsigned long long)off, len);
            return -1;
        }
    }
    return 0;
}

int tokenizer_image_open(const void *data, size_t len, tokenizer **out, char *err, size_t errlen) {
    *out = NULL;
    if (!data || len < sizeof(image_header)) {
        snprintf(err, errlen, "tokenizer image: truncated (%zu bytes, the header alone is %zu)",
                 len, sizeof(image_header));
        return -1;
    }
    if ((uintptr_t)data % IMAGE_ALIGN) {
        snprintf(err, errlen, "tokenizer image: data at %p is not %u-byte aligned", data,
                 IMAGE_ALIGN);
        return -1;
    }
    image_header h;
    memcpy(&h, data, sizeof(h));
    if (check_header(&h, len, err, errlen)) return -1;
    /* Sections are aligned and inside the buffer: safe to read as their types. */
    const unsigned char *base = data;
#define SECTION(s)                                                                                 \
    ((void *)(uintptr_t)(base + h.sec_off[s])) /* const cast: borrowed, unwritten                  \
                                                */
    const added_token *added = SECTION(SEC_ADDED);
    for (int i = 0; i < h.n_added; i++)
        if (!id_ok(added[i].id, h.n_vocab, 0) || added[i].len <= 0) {
            snprintf(err, errlen, "tokenizer image: added token %d is not a token", i);
            return -1;
        }
    const int *stop = SECTION(SEC_STOP);
    for (int i = 0; i < h.n_stop; i++)
        if (!id_ok(stop[i], h.n_vocab, 0)) {
            snprintf(err, errlen, "tokenizer image: stop token %d is not a token id", stop[i]);
            return -1;
        }
    tokenizer *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "tokenizer image: out of memory");
        return -1;
    }
    t->borrowed = 1;
    t->n_vocab = h.n_vocab;
    t->bos = h.bos;
    t->eos = h.eos;
    t->adds_bos = h.adds_bos;
    t->family = h.family;
    t->pattern = h.pattern;
    t->nfc = h.nfc;
    t->ignore_merges = h.ignore_merges;
    t->sp_prepend = h.sp_prepend;
    t->sp_split = h.sp_split;
    t->sp_strip = h.sp_strip;
    t->byte_fallback = h.byte_fallback;
    t->unk = h.unk;
    t->fuse_unk = h.fuse_unk;
    t->max_token_bytes = h.max_token_bytes;
    t->heap_ok = h.heap_ok;
    t->heap_always = h.heap_always;
    t->n_merges = h.n_merges;
    t->n_added = h.n_added;
    t->n_stop = h.n_stop;
    t->pool_used = (size_t)h.pool_used;
    t->vocab_cap = (size_t)h.vocab_cap;
    t->merge_cap = (size_t)h.merge_cap;
    for (int b = 0; b < 256; b++) t->byte_id[b] = h.byte_id[b];
    memcpy(t->added_first, h.added_first, 256);
    t->pool = SECTION(SEC_POOL);
    t->tok_off = SECTION(SEC_TOK_OFF);
    t->tok_len = SECTION(SEC_TOK_LEN);
    if (h.sec_bytes[SEC_DPOOL]) {
        t->dpool = SECTION(SEC_DPOOL);
        t->dec_off = SECTION(SEC_DEC_OFF);
        t->dec_len = SECTION(SEC_DEC_LEN);
    }
    t->vocab_slot = SECTION(SEC_VOCAB_SLOT);
    t->merges = h.merge_cap ? SECTION(SEC_MERGES) : NULL;
    t->added = h.n_added ? SECTION(SEC_ADDED) : NULL;
    t->stop = h.n_stop ? SECTION(SEC_STOP) : NULL;
#undef SECTION
    *out = t;
    return 0;
}
