/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "macro.h"
#include "qga-file.h"

static const char b64_alphabet[64] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of each base64 character; 0x80 marks everything else (including '='). */
static const uint8_t b64_value[256] = {
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x3e, 0x80, 0x80, 0x80, 0x3f,
        0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
        0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

size_t qga_b64_encoded_size(size_t size) {
        if (size / 3 >= SIZE_MAX / 4)
                return SIZE_MAX;
        return (size / 3 + (size % 3 != 0)) * 4;
}

size_t qga_b64_decoded_max(size_t len) {
        return len / 4 * 3;
}

int qga_b64_encode(const void *in, size_t size, char *out, size_t out_size, size_t *ret_len) {
        const uint8_t *s = in;
        size_t need = qga_b64_encoded_size(size);
        char *d = out;

        if (need == SIZE_MAX || need > out_size)
                return -ENOBUFS;

        for (; size >= 3; size -= 3, s += 3, d += 4) {
                uint32_t v = (uint32_t) s[0] << 16 | (uint32_t) s[1] << 8 | s[2];
                d[0] = b64_alphabet[v >> 18];
                d[1] = b64_alphabet[(v >> 12) & 63];
                d[2] = b64_alphabet[(v >> 6) & 63];
                d[3] = b64_alphabet[v & 63];
        }
        if (size > 0) {
                uint32_t v = (uint32_t) s[0] << 16 | (size == 2 ? (uint32_t) s[1] << 8 : 0);
                d[0] = b64_alphabet[v >> 18];
                d[1] = b64_alphabet[(v >> 12) & 63];
                d[2] = size == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
                d[3] = '=';
        }

        if (ret_len)
                *ret_len = need;
        return 0;
}

int qga_b64_decode(const char *in, size_t len, void *out, size_t out_size, size_t *ret_size) {
        const uint8_t *s = (const uint8_t *) in;
        uint8_t *d = out;
        size_t pad = 0, quads, size;

        if (len % 4 != 0)
                return -EINVAL;
        if (len > 0 && s[len - 1] == '=')
                pad = s[len - 2] == '=' ? 2 : 1;
        size = len / 4 * 3 - pad;
        if (size > out_size)
                return -ENOBUFS;

        quads = len / 4 - (pad > 0);
        for (size_t i = 0; i < quads; i++, s += 4, d += 3) {
                uint8_t a = b64_value[s[0]], b = b64_value[s[1]], c = b64_value[s[2]], e = b64_value[s[3]];
                uint32_t v;

                if ((a | b | c | e) & 0x80)
                        return -EINVAL;
                v = (uint32_t) a << 18 | (uint32_t) b << 12 | (uint32_t) c << 6 | e;
                d[0] = (uint8_t) (v >> 16);
                d[1] = (uint8_t) (v >> 8);
                d[2] = (uint8_t) v;
        }

        if (pad > 0) {
                uint8_t a = b64_value[s[0]], b = b64_value[s[1]];
                uint8_t c = pad == 1 ? b64_value[s[2]] : 0;

                if ((a | b | c) & 0x80)
                        return -EINVAL;
                /* Only one encoding of each byte string is accepted: the bits
                 * below the last full byte must be zero. */
                if (pad == 2 ? (b & 0x0f) != 0 : (c & 0x03) != 0)
                        return -EINVAL;
                d[0] = (uint8_t) (a << 2 | b >> 4);
                if (pad == 1)
                        d[1] = (uint8_t) (b << 4 | c >> 2);
        }

        if (ret_size)
                *ret_size = size;
        return 0;
}

int qga_file_read_parse(json_t *result, void *buf, size_t buf_size, size_t *ret_size, bool *ret_eof) {
        json_t *count, *data, *eof;
        size_t size;
        int r;

        if (!json_is_object(result))
                return -EPROTO;
        count = json_object_get(result, "count");
        data = json_object_get(result, "buf-b64");
        eof = json_object_get(result, "eof");
        if (!json_is_integer(count) || !json_is_string(data) || !json_is_boolean(eof))
                return -EPROTO;
        if (json_integer_value(count) < 0 || (uint64_t) json_integer_value(count) > buf_size)
                return -EPROTO;

        r = qga_b64_decode(json_string_value(data), json_string_length(data), buf, buf_size, &size);
        if (r < 0)
                return -EPROTO; /* malformed, or more data than asked for */
        if ((uint64_t) json_integer_value(count) != size)
                return -EPROTO;

        if (ret_size)
                *ret_size = size;
        if (ret_eof)
                *ret_eof = json_is_true(eof);
        return 0;
}

/* ---- guest-file-read replies without a JSON parser ---- */

typedef struct Scan {
        const char *p, *end;
} Scan;

static void scan_ws(Scan *s) {
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r'))
                s->p++;
}

static bool scan_char(Scan *s, char c) {
        scan_ws(s);
        if (s->p >= s->end || *s->p != c)
                return false;
        s->p++;
        return true;
}

/* A string without escapes, control or non-ASCII bytes: anything else is for jansson
 * to judge. Returns its body. */
static bool scan_plain_string(Scan *s, const char **ret, size_t *ret_len) {
        const char *q;

        if (!scan_char(s, '"'))
                return false;
        q = memchr(s->p, '"', (size_t) (s->end - s->p));
        if (!q)
                return false;
        for (const char *c = s->p; c < q; c++)
                if (*c == '\\' || (unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
                        return false;
        *ret = s->p;
        *ret_len = (size_t) (q - s->p);
        s->p = q + 1;
        return true;
}

/* A key among the ones expected: its index, or -1. */
static int scan_key(Scan *s, const char *const *keys, size_t n_keys) {
        const char *k;
        size_t len;

        if (!scan_plain_string(s, &k, &len) || !scan_char(s, ':'))
                return -1;
        for (size_t i = 0; i < n_keys; i++)
                if (strlen(keys[i]) == len && memcmp(keys[i], k, len) == 0)
                        return (int) i;
        return -1;
}

/* base64 characters, checked in the decoder: only the closing quote is looked for here,
 * with memchr, and that there is no escape (the decoder refuses '\\' anyway). */
static bool scan_b64_string(Scan *s, const char **ret, size_t *ret_len) {
        const char *q;

        if (!scan_char(s, '"'))
                return false;
        q = memchr(s->p, '"', (size_t) (s->end - s->p));
        if (!q)
                return false;
        *ret = s->p;
        *ret_len = (size_t) (q - s->p);
        s->p = q + 1;
        return true;
}

int qga_file_read_scan(const char *line, size_t len, void *buf, size_t buf_size, size_t *ret_size,
                       bool *ret_eof) {
        static const char *const top[] = { "return" };
        static const char *const keys[] = { "count", "buf-b64", "eof" };
        Scan s = { .p = line, .end = line + len };
        const char *b64 = NULL;
        size_t b64_len = 0, size;
        uint64_t count = 0;
        bool seen[3] = {}, eof = false;

        if (!scan_char(&s, '{') || scan_key(&s, top, 1) != 0 || !scan_char(&s, '{'))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                int k;

                if (i > 0 && !scan_char(&s, ','))
                        return 0;
                scan_ws(&s);
                k = scan_key(&s, keys, ELEMENTSOF(keys));
                if (k < 0 || seen[k])
                        return 0; /* unknown or repeated: jansson decides */
                seen[k] = true;
                scan_ws(&s);
                switch (k) {
                case 0: {
                        /* A plain decimal integer; "-0", "01", "1.0", "1e3" and long ones
                         * are jansson's to judge. */
                        const char *d = s.p;
                        while (s.p < s.end && *s.p >= '0' && *s.p <= '9') {
                                count = count * 10 + (uint64_t) (*s.p - '0');
                                s.p++;
                        }
                        if (s.p == d || s.p - d > 15 || (*d == '0' && s.p - d > 1))
                                return 0;
                        if (s.p < s.end && (*s.p == '.' || *s.p == 'e' || *s.p == 'E'))
                                return 0;
                        break;
                }
                case 1:
                        if (!scan_b64_string(&s, &b64, &b64_len))
                                return 0;
                        break;
                case 2:
                        if ((size_t) (s.end - s.p) >= 4 && memcmp(s.p, "true", 4) == 0) {
                                eof = true;
                                s.p += 4;
                        } else if ((size_t) (s.end - s.p) >= 5 && memcmp(s.p, "false", 5) == 0)
                                s.p += 5;
                        else
                                return 0;
                        break;
                }
        }
        if (!scan_char(&s, '}') || !scan_char(&s, '}'))
                return 0;
        scan_ws(&s);
        if (s.p != s.end)
                return 0;

        if (count > buf_size)
                return 0;
        if (qga_b64_decode(b64, b64_len, buf, buf_size, &size) < 0 || size != count)
                return 0;

        if (ret_size)
                *ret_size = size;
        if (ret_eof)
                *ret_eof = eof;
        return 1;
}

int qga_file_write_line(int64_t handle, const void *data, size_t size, char **ret_line, size_t *ret_len) {
        static const char suffix[] = QGA_FILE_WRITE_SUFFIX;
        _cleanup_free_ char *line = NULL;
        char prefix[160];
        size_t b64_len, len;
        int n, r;

        if (handle < 0)
                return -EINVAL;
        if (size > QGA_FILE_WRITE_CHUNK_MAX)
                return -EMSGSIZE;

        n = snprintf(prefix, sizeof prefix, QGA_FILE_WRITE_PREFIX, handle, size);
        if (n < 0 || (size_t) n >= sizeof prefix)
                return -EINVAL;

        b64_len = qga_b64_encoded_size(size);
        len = (size_t) n + b64_len + sizeof suffix - 1;
        line = malloc(len + 1);
        if (!line)
                return -ENOMEM;

        memcpy(line, prefix, (size_t) n);
        r = qga_b64_encode(data, size, line + n, b64_len, NULL);
        if (r < 0)
                return r;
        memcpy(line + n + b64_len, suffix, sizeof suffix); /* with the NUL */

        *ret_line = TAKE_PTR(line);
        *ret_len = len;
        return 0;
}
