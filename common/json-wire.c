/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "json-wire.h"

/* Decodes one UTF-8 sequence strictly (no overlong forms, no surrogates, at most
 * U+10FFFF). Returns its length and the code point, or 0 when it is invalid. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *ret) {
        uint32_t cp, min;
        size_t len;

        if (p[0] < 0x80) {
                *ret = p[0];
                return 1;
        }
        if (p[0] >= 0xC2 && p[0] <= 0xDF) {
                len = 2;
                cp = p[0] & 0x1F;
                min = 0x80;
        } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
                len = 3;
                cp = p[0] & 0x0F;
                min = 0x800;
        } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
                len = 4;
                cp = p[0] & 0x07;
                min = 0x10000;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        *ret = cp;
        return len;
}

bool json_wire_text_ok(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;

        while (p < end) {
                uint32_t cp;
                size_t k;

                if (*p >= 0x01 && *p < 0x80) { /* the common case */
                        p++;
                        continue;
                }
                if (*p == 0)
                        return false;
                k = utf8_decode(p, (size_t) (end - p), &cp);
                if (k == 0 || unicode_is_noncharacter(cp))
                        return false;
                p += k;
        }
        return true;
}

static int check_value(json_t *v, unsigned depth, unsigned max_depth) {
        const char *key;
        size_t key_len, i;
        json_t *e;
        int r;

        switch (json_typeof(v)) {
        case JSON_OBJECT:
                if (depth >= max_depth)
                        return -E2BIG;
                json_object_keylen_foreach(v, key, key_len, e) {
                        if (!json_wire_text_ok(key, key_len))
                                return -EILSEQ;
                        r = check_value(e, depth + 1, max_depth);
                        if (r < 0)
                                return r;
                }
                return 0;
        case JSON_ARRAY:
                if (depth >= max_depth)
                        return -E2BIG;
                json_array_foreach(v, i, e) {
                        r = check_value(e, depth + 1, max_depth);
                        if (r < 0)
                                return r;
                }
                return 0;
        case JSON_STRING:
                return json_wire_text_ok(json_string_value(v), json_string_length(v)) ? 0 : -EILSEQ;
        default:
                return 0;
        }
}

int json_wire_check_value(json_t *v, unsigned max_depth) {
        if (!v)
                return -EINVAL;
        /* The recursion is bounded by max_depth, not by the input. */
        return check_value(v, 0, max_depth);
}

static int hex4(const char *p, uint32_t *ret) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++) {
                char c = p[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t) (c - 'A' + 10);
                else
                        return -EILSEQ;
        }
        *ret = v;
        return 0;
}

/* Skips the body of a string that starts at s[*pos] (after its opening quote);
 * leaves *pos after the closing quote. */
static int scan_string(const char *s, size_t n, size_t *pos) {
        size_t i = *pos;

        while (i < n) {
                unsigned char c = (unsigned char) s[i];
                uint32_t cp, lo;
                size_t k;

                if (c == '"') {
                        *pos = i + 1;
                        return 0;
                }
                if (c < 0x20)
                        return -EILSEQ;
                if (c != '\\') {
                        if (c < 0x80) {
                                i++;
                                continue;
                        }
                        k = utf8_decode((const unsigned char *) s + i, n - i, &cp);
                        if (k == 0 || unicode_is_noncharacter(cp))
                                return -EILSEQ;
                        i += k;
                        continue;
                }
                if (++i >= n)
                        return -EINVAL;
                switch (s[i]) {
                case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                        i++;
                        continue;
                case 'u':
                        break;
                default: /* QEMU also reads \' ; jansson never writes it */
                        return -EILSEQ;
                }
                if (n - i < 5 || hex4(s + i + 1, &cp) < 0)
                        return -EILSEQ;
                i += 5;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u' || hex4(s + i + 2, &lo) < 0 ||
                            lo < 0xDC00 || lo > 0xDFFF)
                                return -EILSEQ;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                        return -EILSEQ;
                if (cp == 0 || unicode_is_noncharacter(cp))
                        return -EILSEQ;
        }
        return -EINVAL; /* unterminated */
}

static bool is_scalar_byte(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' ||
               (c >= 'A' && c <= 'Z');
}

int json_wire_check_line(const char *s, size_t n, unsigned max_depth) {
        uint64_t is_array = 0; /* bit d: the container at depth d+1 is an array */
        unsigned depth = 0;
        size_t tokens = 0, i = 0;
        bool seen = false;
        int r;

        if (!s || max_depth == 0 || max_depth > 64)
                return -EINVAL;

        while (i < n) {
                char c = s[i];

                if (c == ' ') {
                        i++;
                        continue;
                }
                if (depth == 0 && (seen || c != '{'))
                        return -EINVAL; /* one object, nothing before or after it */
                if (++tokens > JSON_WIRE_TOKENS_MAX)
                        return -EMSGSIZE;
                switch (c) {
                case '{':
                case '[':
                        if (depth >= max_depth)
                                return -E2BIG;
                        if (c == '[')
                                is_array |= UINT64_C(1) << depth;
                        else
                                is_array &= ~(UINT64_C(1) << depth);
                        depth++;
                        seen = true;
                        i++;
                        break;
                case '}':
                case ']':
                        if (depth == 0 || ((is_array >> (depth - 1)) & 1) != (c == ']'))
                                return -EINVAL;
                        depth--;
                        i++;
                        break;
                case ':':
                case ',':
                        i++;
                        break;
                case '"':
                        i++;
                        r = scan_string(s, n, &i);
                        if (r < 0)
                                return r;
                        break;
                default:
                        /* Numbers and literals: their spelling is the parsers' business,
                         * but nothing else (no quote of QEMU's '...' strings, no control
                         * byte, no 0xFF that resets the agent's parser) may stand here. */
                        if (!is_scalar_byte(c))
                                return -EILSEQ;
                        while (i < n && is_scalar_byte(s[i]))
                                i++;
                }
        }
        return depth == 0 && seen ? 0 : -EINVAL;
}
