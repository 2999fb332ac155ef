/* pretokenize.c — the pre-tokenisation patterns (GPT-2's; Llama 3's and Qwen2's at the end),
 * matched by hand over code points.
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * The reference is the JavaScript encoder (npm gpt-3-encoder), whose regex has the u flag, so the
 * classes are JavaScript's:
 *   \p{L}  General_Category L (Lu Ll Lt Lm Lo); combining marks (Mn Mc) are not letters, so "é"
 *          written e + U+0301 splits after the e, as in the reference.
 *   \p{N}  General_Category N (Nd Nl No): "½", "²", "Ⅻ" are numbers.
 *   \s     ECMAScript WhiteSpace + LineTerminator: TAB LF VT FF CR, every Zs (space, U+00A0,
 *          U+1680, U+2000..200A, U+202F, U+205F, U+3000), U+2028, U+2029 and U+FEFF. Unlike
 *          Python's re (the original encoder.py) U+FEFF is a space and U+0085 and U+001C..001F
 *          are not.
 * Categories come from utf8proc; code points it has as unassigned but Unicode 15.1 .. 17.0
 * made letters or numbers come from the table below, so that the classes are Unicode 17.0's
 * (node 20's, the reference's) whatever utf8proc is installed. Checked code point by code point
 * against node 20.20 (ICU 78.2, Unicode 17.0): identical for all 0x110000.
 *
 * Alternatives are tried in order at each position, as a backtracking regex does. "\s+(?!\S)"
 * takes a whitespace run to the end of the text, or all of it but its last character when a
 * non-space follows (that last character then starts the next piece: " word", or itself alone
 * through "\s+" when it is not U+0020); a single whitespace character before a non-space falls
 * through to "\s+". The contractions are lowercase only ("'LL" is "'" then "LL"), as in the
 * reference. The optional space is U+0020 only.
 *
 * Invalid UTF-8. The reference takes a JavaScript string, which cannot hold invalid UTF-8 (its
 * closest case, a lone surrogate, is [^\s\p{L}\p{N}] and then encoded as U+FFFD, losing the
 * text). Here each byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF, no truncated sequences) is a code point of its
 * own in the "other" class [^\s\p{L}\p{N}], and its byte is encoded as that byte's token. So a
 * stray byte joins the run of punctuation around it, valid text around it tokenizes as usual,
 * and decoding gives back the exact bytes. */
#include <stdint.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer_internal.h"

enum { CL_SPACE, CL_LETTER, CL_NUMBER, CL_OTHER };

/* Classes of the ASCII characters. */
static const unsigned char ascii_class[128] = {
    /* 0x00 */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 3, 3,
    /* 0x10 */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* 0x20 */ 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* 0x30 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
    /* 0x40 */ 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x50 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3,
    /* 0x60 */ 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x70 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3,
};

/* Letters and numbers assigned in Unicode 15.1 .. 17.0, sorted (utf8proc 2.8 is Unicode 15.0). */
static const struct {
    int32_t lo, hi;
    int cl;
} newer_assigned[] = {
    {0x88F, 0x88F, CL_LETTER},     {0xC5C, 0xC5C, CL_LETTER},     {0xCDC, 0xCDC, CL_LETTER},
    {0x1C89, 0x1C8A, CL_LETTER},   {0xA7CB, 0xA7CF, CL_LETTER},   {0xA7D2, 0xA7D2, CL_LETTER},
    {0xA7D4, 0xA7D4, CL_LETTER},   {0xA7DA, 0xA7DC, CL_LETTER},   {0xA7F1, 0xA7F1, CL_LETTER},
    {0x105C0, 0x105F3, CL_LETTER}, {0x10940, 0x10959, CL_LETTER}, {0x10D40, 0x10D49, CL_NUMBER},
    {0x10D4A, 0x10D65, CL_LETTER}, {0x10D6F, 0x10D85, CL_LETTER}, {0x10EC2, 0x10EC7, CL_LETTER},
    {0x11380, 0x11389, CL_LETTER}, {0x1138B, 0x1138B, CL_LETTER}, {0x1138E, 0x1138E, CL_LETTER},
    {0x11390, 0x113B5, CL_LETTER}, {0x113B7, 0x113B7, CL_LETTER}, {0x113D1, 0x113D1, CL_LETTER},
    {0x113D3, 0x113D3, CL_LETTER}, {0x116D0, 0x116E3, CL_NUMBER}, {0x11BC0, 0x11BE0, CL_LETTER},
    {0x11BF0, 0x11BF9, CL_NUMBER}, {0x11DB0, 0x11DDB, CL_LETTER}, {0x11DE0, 0x11DE9, CL_NUMBER},
    {0x13460, 0x143FA, CL_LETTER}, {0x16100, 0x1611D, CL_LETTER}, {0x16130, 0x16139, CL_NUMBER},
    {0x16D40, 0x16D6C, CL_LETTER}, {0x16D70, 0x16D79, CL_NUMBER}, {0x16EA0, 0x16EB8, CL_LETTER},
    {0x16EBB, 0x16ED3, CL_LETTER}, {0x16FF2, 0x16FF3, CL_LETTER}, {0x16FF4, 0x16FF6, CL_NUMBER},
    {0x187F8, 0x187FF, CL_LETTER}, {0x18CFF, 0x18CFF, CL_LETTER}, {0x18D09, 0x18D1E, CL_LETTER},
    {0x18D80, 0x18DF2, CL_LETTER}, {0x1CCF0, 0x1CCF9, CL_NUMBER}, {0x1E5D0, 0x1E5ED, CL_LETTER},
    {0x1E5F0, 0x1E5F0, CL_LETTER}, {0x1E5F1, 0x1E5FA, CL_NUMBER}, {0x1E6C0, 0x1E6DE, CL_LETTER},
    {0x1E6E0, 0x1E6E2, CL_LETTER}, {0x1E6E4, 0x1E6E5, CL_LETTER}, {0x1E6E7, 0x1E6ED, CL_LETTER},
    {0x1E6F0, 0x1E6F4, CL_LETTER}, {0x1E6FE, 0x1E6FF, CL_LETTER}, {0x2B73A, 0x2B73F, CL_LETTER},
    {0x2CEA2, 0x2CEAD, CL_LETTER}, {0x2EBF0, 0x2EE5D, CL_LETTER}, {0x323B0, 0x33479, CL_LETTER}};

static int newer_class(int32_t cp) {
    size_t lo = 0, hi = sizeof(newer_assigned) / sizeof(newer_assigned[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < newer_assigned[mid].lo)
            hi = mid;
        else if (cp > newer_assigned[mid].hi)
            lo = mid + 1;
        else
            return newer_assigned[mid].cl;
    }
    return CL_OTHER;
}

static int codepoint_class(int32_t cp) {
    if (cp < 128) return ascii_class[cp];
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CN:
        return newer_class(cp);
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return CL_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return CL_NUMBER;
    case UTF8PROC_CATEGORY_ZS:
        return CL_SPACE;
    default:
        return cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF ? CL_SPACE : CL_OTHER;
    }
}

/* The well-formed UTF-8 character at s[pos] (pos < len): its length, with its code point in
 * *cp; 0 when s[pos] does not start one. */
static size_t utf8_decode(const unsigned char *s, size_t len, size_t pos, int32_t *cp) {
    unsigned b0 = s[pos];
    size_t left = len - pos;
    if (b0 < 0x80) {
        *cp = (int32_t)b0;
        return 1;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (left >= 2 && (s[pos + 1] & 0xC0) == 0x80) {
            *cp = (int32_t)((b0 & 0x1F) << 6 | (s[pos + 1] & 0x3F));
            return 2;
        }
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        if (left >= 3 && s[pos + 1] >= lo && s[pos + 1] <= hi && (s[pos + 2] & 0xC0) == 0x80) {
            *cp = (int32_t)((b0 & 0x0F) << 12 | (s[pos + 1] & 0x3F) << 6 | (s[pos + 2] & 0x3F));
            return 3;
        }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        unsigned lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (left >= 4 && s[pos + 1] >= lo && s[pos + 1] <= hi && (s[pos + 2] & 0xC0) == 0x80 &&
            (s[pos + 3] & 0xC0) == 0x80) {
            *cp = (int32_t)((b0 & 0x07) << 18 | (s[pos + 1] & 0x3F) << 12 |
                            (s[pos + 2] & 0x3F) << 6 | (s[pos + 3] & 0x3F));
            return 4;
        }
    }
    return 0;
}

size_t utf8_char_len(const unsigned char *s, size_t len, size_t pos) {
    int32_t cp;
    return utf8_decode(s, len, pos, &cp);
}

/* The character at s[pos] (pos < len): its class and its length in bytes (1 for an invalid
 * byte, which is CL_OTHER). */
static int char_at(const unsigned char *s, size_t len, size_t pos, size_t *nbytes) {
    if (s[pos] < 0x80) {
        *nbytes = 1;
        return ascii_class[s[pos]];
    }
    int32_t cp;
    *nbytes = utf8_decode(s, len, pos, &cp);
    if (!*nbytes) {
        *nbytes = 1;
        return CL_OTHER;
    }
    return codepoint_class(cp);
}

/* The end of the run of characters of class cl that starts at pos. */
static size_t run_end(const unsigned char *s, size_t len, size_t pos, int cl) {
    size_t n;
    while (pos < len && char_at(s, len, pos, &n) == cl) pos += n;
    return pos;
}

size_t pretokenize_next(const unsigned char *s, size_t len, size_t pos) {
    size_t n;
    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (s[pos] == '\'' && pos + 1 < len) {
        unsigned char c1 = s[pos + 1], c2 = pos + 2 < len ? s[pos + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return pos + 3;
    }
    int cl = char_at(s, len, pos, &n);
    /* " ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+" with the space */
    if (s[pos] == ' ' && pos + 1 < len) {
        size_t n1;
        int cl1 = char_at(s, len, pos + 1, &n1);
        if (cl1 != CL_SPACE) return run_end(s, len, pos + 1 + n1, cl1);
    }
    /* the same without it */
    if (cl != CL_SPACE) return run_end(s, len, pos + n, cl);
    /* "\s+(?!\S)|\s+": the run, less its last character when a non-space follows and the run
     * has more than one */
    size_t last = pos, end = pos + n;
    while (end < len) {
        size_t m;
        if (char_at(s, len, end, &m) != CL_SPACE) return last > pos ? last : end;
        last = end;
        end += m;
    }
    return end;
}

/* ---- Llama 3 and Qwen2 ------------------------------------------------------------------------
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 *
 * Qwen2's (Qwen2.5, Qwen3) is the same with \p{N} for \p{N}{1,3}: one digit per piece. Classes
 * as for GPT-2 above. The references (transformers.js and llama3-tokenizer-js) rewrite the
 * case-insensitive group as (?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])), so "'S" and
 * "'LL" are contractions but "'ſ" (U+017F, which Unicode folds to s) is not; so here. */

static unsigned char ascii_lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* The end of a run of CR and LF from pos. */
static size_t newlines_end(const unsigned char *s, size_t len, size_t pos) {
    while (pos < len && (s[pos] == '\r' || s[pos] == '\n')) pos++;
    return pos;
}

static size_t next_llama3(const unsigned char *s, size_t len, size_t pos, int max_digits) {
    size_t n, n1;
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (s[pos] == '\'' && pos + 1 < len) {
        unsigned char c1 = ascii_lower(s[pos + 1]),
                      c2 = pos + 2 < len ? ascii_lower(s[pos + 2]) : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return pos + 3;
    }
    int cl = char_at(s, len, pos, &n);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (cl == CL_LETTER) return run_end(s, len, pos + n, CL_LETTER);
    if (cl != CL_NUMBER && s[pos] != '\r' && s[pos] != '\n' && pos + n < len &&
        char_at(s, len, pos + n, &n1) == CL_LETTER)
        return run_end(s, len, pos + n + n1, CL_LETTER);
    /* \p{N}{1,3} */
    if (cl == CL_NUMBER) {
        size_t end = pos + n;
        for (int k = 1; k < max_digits && end < len && char_at(s, len, end, &n1) == CL_NUMBER; k++)
            end += n1;
        return end;
    }
    /* " ?[^\s\p{L}\p{N}]+[\r\n]*" with the space, then without */
    if (s[pos] == ' ' && pos + 1 < len && char_at(s, len, pos + 1, &n1) == CL_OTHER)
        return newlines_end(s, len, run_end(s, len, pos + 1 + n1, CL_OTHER));
    if (cl == CL_OTHER) return newlines_end(s, len, run_end(s, len, pos + n, CL_OTHER));
    /* \s*[\r\n]+: backtracking from the whole whitespace run, the match ends just after its
     * last CR or LF */
    size_t end = pos, after_newline = 0;
    while (end < len && char_at(s, len, end, &n1) == CL_SPACE) {
        end += n1;
        if (s[end - 1] == '\r' || s[end - 1] == '\n') after_newline = end;
    }
    if (after_newline) return after_newline;
    /* \s+(?!\S)|\s+ as in GPT-2's pattern */
    size_t last = pos;
    end = pos + n;
    while (end < len) {
        if (char_at(s, len, end, &n1) != CL_SPACE) return last > pos ? last : end;
        last = end;
        end += n1;
    }
    return end;
}

size_t pretokenize_next_pattern(int pattern, const unsigned char *s, size_t len, size_t pos) {
    switch (pattern) {
    case PATTERN_LLAMA3:
        return next_llama3(s, len, pos, 3);
    case PATTERN_QWEN2:
        return next_llama3(s, len, pos, 1);
    default:
        return pretokenize_next(s, len, pos);
    }
}

/* The regexes exactly as the files spell them (after JSON unescaping). */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int pretokenize_pattern_of(const char *re) {
    if (!strcmp(re, gpt2_regex)) return PATTERN_GPT2;
    if (!strcmp(re, llama3_regex)) return PATTERN_LLAMA3;
    if (!strcmp(re, qwen2_regex)) return PATTERN_QWEN2;
    return -1;
}
