/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json-wire.h"
#include "macro.h"

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

/* ---- a reply's "return" value, re-written without building it ---- */

#define REPLY_KEYS_MAX 32U

typedef struct ReplyScan {
        const char *s;
        size_t n, i;
        char *out; /* NULL: counting only */
        size_t len;
} ReplyScan;

static void reply_put(ReplyScan *r, const char *p, size_t k) {
        if (r->out)
                memcpy(r->out + r->len, p, k);
        r->len += k;
}

static void reply_put_u(ReplyScan *r, uint32_t u) {
        static const char hex[] = "0123456789ABCDEF";
        char e[6] = { '\\', 'u', hex[(u >> 12) & 15], hex[(u >> 8) & 15], hex[(u >> 4) & 15], hex[u & 15] };

        reply_put(r, e, sizeof e);
}

/* One code point as jansson's dump_string() writes it with JSON_ENSURE_ASCII. */
static void reply_put_cp(ReplyScan *r, uint32_t cp) {
        char c = (char) cp;

        switch (cp) {
        case '"': reply_put(r, "\\\"", 2); return;
        case '\\': reply_put(r, "\\\\", 2); return;
        case '\b': reply_put(r, "\\b", 2); return;
        case '\f': reply_put(r, "\\f", 2); return;
        case '\n': reply_put(r, "\\n", 2); return;
        case '\r': reply_put(r, "\\r", 2); return;
        case '\t': reply_put(r, "\\t", 2); return;
        }
        if (cp >= 0x20 && cp <= 0x7F)
                reply_put(r, &c, 1);
        else if (cp < 0x10000)
                reply_put_u(r, cp);
        else {
                cp -= 0x10000;
                reply_put_u(r, 0xD800 | (cp >> 10));
                reply_put_u(r, 0xDC00 | (cp & 0x3FF));
        }
}

static void reply_ws(ReplyScan *r) {
        while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\r' || r->s[r->i] == '\n'))
                r->i++;
}

/* A string at s[i] == '"'. Declines (false) what jansson refuses or decodes to
 * something else than it reads: control bytes, invalid UTF-8, lone surrogates,
 * "\u0000"; with plain_only, any escape at all (object keys: duplicates are found
 * by comparing the raw bytes). *ret_start and *ret_len: the raw body. */
static bool reply_string(ReplyScan *r, bool plain_only, const char **ret_start, size_t *ret_len) {
        const unsigned char *s = (const unsigned char *) r->s;
        size_t i = r->i + 1, start = i;

        reply_put(r, "\"", 1);
        while (i < r->n) {
                uint32_t cp, lo;
                size_t k;

                if (s[i] == '"') {
                        reply_put(r, "\"", 1);
                        if (ret_start) {
                                *ret_start = r->s + start;
                                *ret_len = i - start;
                        }
                        r->i = i + 1;
                        return true;
                }
                if (s[i] < 0x20)
                        return false;
                if (s[i] != '\\') {
                        /* A run of ASCII that needs no escape goes out as it is. */
                        size_t j = i;
                        while (j < r->n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
                                j++;
                        if (j > i) {
                                reply_put(r, r->s + i, j - i);
                                i = j;
                                continue;
                        }
                        k = utf8_decode(s + i, r->n - i, &cp);
                        if (k == 0)
                                return false;
                        reply_put_cp(r, cp);
                        i += k;
                        continue;
                }
                if (plain_only || ++i >= r->n)
                        return false;
                switch (s[i]) {
                case '"': cp = '"'; break;
                case '\\': cp = '\\'; break;
                case '/': cp = '/'; break;
                case 'b': cp = '\b'; break;
                case 'f': cp = '\f'; break;
                case 'n': cp = '\n'; break;
                case 'r': cp = '\r'; break;
                case 't': cp = '\t'; break;
                case 'u':
                        if (r->n - i < 5 || hex4(r->s + i + 1, &cp) < 0)
                                return false;
                        i += 4;
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                                if (r->n - i < 7 || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                                    hex4(r->s + i + 3, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                                        return false;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                i += 6;
                        } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0)
                                return false;
                        break;
                default:
                        return false;
                }
                reply_put_cp(r, cp);
                i++;
        }
        return false; /* unterminated */
}

static bool reply_delimiter_next(ReplyScan *r) {
        if (r->i >= r->n)
                return true;
        char c = r->s[r->i];
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ']' || c == '}';
}

static bool reply_value(ReplyScan *r, unsigned depth) {
        static const char *const literals[] = { "true", "false", "null" };
        char c;

        reply_ws(r);
        if (r->i >= r->n)
                return false;
        c = r->s[r->i];
        if (c == '"')
                return reply_string(r, false, NULL, NULL);
        if (c == '{' || c == '[') {
                struct { const char *p; size_t len; } keys[REPLY_KEYS_MAX];
                size_t n_keys = 0;
                char close = c == '{' ? '}' : ']';

                if (depth >= JSON_WIRE_DEPTH_MAX)
                        return false;
                reply_put(r, &c, 1);
                r->i++;
                reply_ws(r);
                if (r->i < r->n && r->s[r->i] == close) {
                        reply_put(r, &close, 1);
                        r->i++;
                        return true;
                }
                for (;;) {
                        if (c == '{') {
                                const char *k;
                                size_t klen;

                                reply_ws(r);
                                if (r->i >= r->n || r->s[r->i] != '"' || !reply_string(r, true, &k, &klen))
                                        return false;
                                /* jansson refuses duplicate keys (JSON_REJECT_DUPLICATES): so does
                                 * this, on bodies without escapes; a large object is left to it. */
                                if (n_keys == REPLY_KEYS_MAX)
                                        return false;
                                for (size_t j = 0; j < n_keys; j++)
                                        if (keys[j].len == klen && memcmp(keys[j].p, k, klen) == 0)
                                                return false;
                                keys[n_keys].p = k;
                                keys[n_keys++].len = klen;
                                reply_ws(r);
                                if (r->i >= r->n || r->s[r->i] != ':')
                                        return false;
                                reply_put(r, ":", 1);
                                r->i++;
                        }
                        if (!reply_value(r, depth + 1))
                                return false;
                        reply_ws(r);
                        if (r->i >= r->n)
                                return false;
                        if (r->s[r->i] == close) {
                                reply_put(r, &close, 1);
                                r->i++;
                                return true;
                        }
                        if (r->s[r->i] != ',')
                                return false;
                        reply_put(r, ",", 1);
                        r->i++;
                }
        }
        for (size_t l = 0; l < ELEMENTSOF(literals); l++) {
                size_t k = strlen(literals[l]);
                if (r->n - r->i >= k && memcmp(r->s + r->i, literals[l], k) == 0) {
                        r->i += k;
                        if (!reply_delimiter_next(r))
                                return false;
                        reply_put(r, literals[l], k);
                        return true;
                }
        }
        /* Integers that surely fit jansson's json_int_t, written as it writes them; "-0",
         * fractions, exponents and longer ones are left to jansson. */
        size_t start = r->i, digits = 0;
        if (r->s[r->i] == '-')
                r->i++;
        while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') {
                r->i++;
                digits++;
        }
        if (digits == 0 || digits > 18 || !reply_delimiter_next(r))
                return false;
        if (r->s[start + (r->s[start] == '-')] == '0' && (digits > 1 || r->s[start] == '-'))
                return false; /* a leading zero, or -0 */
        reply_put(r, r->s + start, r->i - start);
        return true;
}

static bool reply_scan(ReplyScan *r) {
        static const char key[] = "\"return\"";

        r->i = 0;
        r->len = 0;
        reply_ws(r);
        if (r->i >= r->n || r->s[r->i] != '{')
                return false;
        r->i++;
        reply_ws(r);
        if (r->n - r->i < sizeof key - 1 || memcmp(r->s + r->i, key, sizeof key - 1) != 0)
                return false;
        r->i += sizeof key - 1;
        reply_ws(r);
        if (r->i >= r->n || r->s[r->i] != ':')
                return false;
        r->i++;
        if (!reply_value(r, 1))
                return false;
        reply_ws(r);
        if (r->i >= r->n || r->s[r->i] != '}')
                return false;
        r->i++;
        reply_ws(r);
        return r->i == r->n;
}

int json_wire_reply_return(const char *line, size_t len, char **ret, size_t *ret_len) {
        ReplyScan r = { .s = line, .n = len };

        if (!line || !ret)
                return -EINVAL;
        /* Once to check and measure, once to write: the text is allocated at its size. */
        if (!reply_scan(&r))
                return 0;
        r.out = malloc(r.len + 1);
        if (!r.out)
                return -ENOMEM;
        if (!reply_scan(&r)) { /* cannot happen: the same bytes */
                free(r.out);
                return 0;
        }
        r.out[r.len] = '\0';
        *ret = r.out;
        if (ret_len)
                *ret_len = r.len;
        return 1;
}
