/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The line buffer the QMP and guest-agent clients share (common/linebuf.c): lines cut
 * at '\n' across any split of the reads, the bound on a partial line, dropping an
 * over-long line without buffering it, the 0xFF reset and its cost. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"
#include "macro.h"

#define LIMIT 64U
#define MAX_BUF (LIMIT + 16U)

/* What the owner saw, as text: each line in [], "T" for too long, "D" for dropped. */
typedef struct Seen {
        char text[4096];
        size_t n_lines;
} Seen;

static void seen_add(Seen *s, const char *p, size_t len) {
        size_t used = strlen(s->text);
        int k = p ? snprintf(s->text + used, sizeof s->text - used, "[%.*s]", (int) len, p)
                  : snprintf(s->text + used, sizeof s->text - used, "%s", len ? "T" : "D");
        assert_true(k >= 0 && (size_t) k < sizeof s->text - used);
}

/* Feeds data in pieces of at most step bytes, handling every event after each. */
static void feed(LineBuf *b, const void *data, size_t size, size_t step, size_t limit, Seen *s) {
        const char *p = data;

        while (size > 0) {
                size_t n = size < step ? size : step, space;
                char *dst;
                const char *line;
                size_t len;
                LineBufResult r;

                assert_int_equal(linebuf_reserve(b, n, &dst, &space), 0);
                if (n > space)
                        n = space;
                memcpy(dst, p, n);
                linebuf_commit(b, n);
                p += n;
                size -= n;
                while ((r = linebuf_next(b, limit, &line, &len)) != LINEBUF_NONE) {
                        if (r == LINEBUF_LINE) {
                                seen_add(s, line, len);
                                s->n_lines++;
                        } else
                                seen_add(s, NULL, r == LINEBUF_TOO_LONG);
                }
                assert_true(b->cap <= b->max);
        }
}

static void test_split_reads(void **state) {
        static const char in[] = "{\"a\":1}\n\n{\"b\":2}\nxy\n";

        /* Every read size from one byte to all of it: the same lines. */
        for (size_t step = 1; step <= sizeof in - 1; step++) {
                LineBuf b;
                Seen s = {};

                linebuf_init(&b, 16, 32, MAX_BUF, 0);
                feed(&b, in, sizeof in - 1, step, LIMIT, &s);
                assert_string_equal(s.text, "[{\"a\":1}][][{\"b\":2}][xy]");
                assert_int_equal(linebuf_pending(&b), 0);
                linebuf_free(&b);
        }
}

static void test_partial_kept(void **state) {
        LineBuf b;
        Seen s = {};

        linebuf_init(&b, 16, 32, MAX_BUF, 0);
        feed(&b, "abc\ndef", 7, 7, LIMIT, &s);
        assert_string_equal(s.text, "[abc]");
        assert_int_equal(linebuf_pending(&b), 3);
        feed(&b, "g\n", 2, 2, LIMIT, &s);
        assert_string_equal(s.text, "[abc][defg]");
        assert_int_equal(linebuf_pending(&b), 0);
        linebuf_free(&b);
}

static void test_crlf(void **state) {
        LineBuf b;
        Seen s = {};

        /* QMP strips a '\r' before the '\n' (LINEBUF_STRIP_CR), and only that one. */
        linebuf_init(&b, 16, 32, MAX_BUF, LINEBUF_STRIP_CR);
        feed(&b, "a\r\n\r\n\rb\r\r\n", 11, 1, LIMIT, &s);
        assert_string_equal(s.text, "[a][][\rb\r]");
        linebuf_free(&b);

        /* The agent's client keeps it (its JSON parser reads it as white space). */
        memset(&s, 0, sizeof s);
        linebuf_init(&b, 16, 32, MAX_BUF, LINEBUF_RESET_FF);
        feed(&b, "a\r\n", 3, 3, LIMIT, &s);
        assert_string_equal(s.text, "[a\r]");
        linebuf_free(&b);
}

static void test_exact_limit(void **state) {
        char line[LIMIT + 1];
        LineBuf b;
        Seen s = {};

        memset(line, 'x', LIMIT);
        line[LIMIT] = '\n';
        for (size_t step = 1; step <= LIMIT + 1; step += 7) {
                memset(&s, 0, sizeof s);
                linebuf_init(&b, 16, 32, MAX_BUF, 0);
                feed(&b, line, sizeof line, step, LIMIT, &s);
                assert_int_equal(s.n_lines, 1);
                assert_int_equal(strlen(s.text), LIMIT + 2);
                assert_true(b.peak <= MAX_BUF);
                linebuf_free(&b);
        }
}

static void test_over_limit_dropped(void **state) {
        const size_t big = 10 * 1024 * 1024;
        _cleanup_free_ char *data = malloc(big + 16);
        LineBuf b;
        Seen s = {};

        /* limit + 1 bytes: dropped as soon as it is known too long, the rest of it as it
         * arrives; the next line is whole. */
        assert_non_null(data);
        memset(data, 'y', LIMIT + 1);
        memcpy(data + LIMIT + 1, "\nok\n", 4);
        for (size_t step = 1; step <= LIMIT + 1; step += 5) {
                memset(&s, 0, sizeof s);
                linebuf_init(&b, 16, 32, MAX_BUF, 0);
                feed(&b, data, LIMIT + 1, step, LIMIT, &s);
                assert_string_equal(s.text, "T");
                assert_int_equal(linebuf_pending(&b), 0);
                feed(&b, data + LIMIT + 1, 4, step, LIMIT, &s);
                assert_string_equal(s.text, "TD[ok]");
                assert_true(b.peak <= MAX_BUF);
                linebuf_free(&b);
        }

        /* A complete line that fitted one read is handed out: the owner judges it. */
        memset(&s, 0, sizeof s);
        linebuf_init(&b, 16, 32, MAX_BUF, 0);
        feed(&b, data, LIMIT + 5, LIMIT + 5, LIMIT, &s);
        assert_int_equal(s.n_lines, 2);
        linebuf_free(&b);

        /* 10 MiB of one line through a buffer of 80 bytes: memory does not grow. */
        memset(data, 'z', big);
        memcpy(data + big, "\nok\n", 4);
        memset(&s, 0, sizeof s);
        linebuf_init(&b, 16, 32, MAX_BUF, 0);
        feed(&b, data, big + 4, 4096, LIMIT, &s);
        assert_string_equal(s.text, "TD[ok]");
        assert_true(b.peak <= MAX_BUF);
        linebuf_free(&b);
}

static void test_drop_partial(void **state) {
        LineBuf b;
        Seen s = {};

        linebuf_init(&b, 16, 32, MAX_BUF, 0);
        feed(&b, "abc", 3, 3, LIMIT, &s);
        linebuf_drop_partial(&b);
        assert_true(linebuf_dropping(&b));
        feed(&b, "def\nghi\n", 8, 8, LIMIT, &s);
        assert_string_equal(s.text, "D[ghi]");

        /* Nothing partial: nothing to drop, the next line is whole. */
        memset(&s, 0, sizeof s);
        linebuf_drop_partial(&b);
        assert_false(linebuf_dropping(&b));
        feed(&b, "jkl\n", 4, 4, LIMIT, &s);
        assert_string_equal(s.text, "[jkl]");
        linebuf_free(&b);
}

/* A 0xFF at every position of a short stream: what follows the last 0xFF before a
 * '\n' is the line; whatever came before it is void; lines already ended stay. */
static void test_ff_every_position(void **state) {
        static const char base[] = "ab\ncd\n";

        for (size_t pos = 0; pos <= sizeof base - 1; pos++) {
                char in[sizeof base + 1], want[64] = "";
                size_t k = 0;

                memcpy(in, base, pos);
                in[pos] = (char) 0xFF;
                memcpy(in + pos + 1, base + pos, sizeof base - 1 - pos);
                /* Expected: the lines of base, the one holding the 0xFF cut to what follows it. */
                for (size_t i = 0; i < sizeof base - 1;) {
                        const char *nl = strchr(base + i, '\n');
                        size_t end = (size_t) (nl - base);

                        if (pos >= i && pos <= end)
                                k = (size_t) snprintf(want + strlen(want), sizeof want - strlen(want), "[%.*s]",
                                                      (int) (end - pos), base + pos);
                        else
                                k = (size_t) snprintf(want + strlen(want), sizeof want - strlen(want), "[%.*s]",
                                                      (int) (end - i), base + i);
                        i = end + 1;
                }
                assert_true(k > 0);

                for (size_t step = 1; step <= sizeof in; step++) {
                        LineBuf b;
                        Seen s = {};

                        linebuf_init(&b, 16, 32, MAX_BUF, LINEBUF_RESET_FF);
                        feed(&b, in, sizeof base, step, LIMIT, &s);
                        assert_string_equal(s.text, want);
                        linebuf_free(&b);
                }

                /* Without LINEBUF_RESET_FF it is just a byte. */
                LineBuf b;
                Seen s = {};
                linebuf_init(&b, 16, 32, MAX_BUF, 0);
                feed(&b, in, sizeof base, sizeof base, LIMIT, &s);
                assert_int_equal(s.n_lines, 2);
                linebuf_free(&b);
        }
}

static void test_ff_ends_drop(void **state) {
        char data[3 * LIMIT];
        LineBuf b;
        Seen s = {};

        /* An over-long line being dropped ends at a 0xFF as well as at a '\n'. */
        memset(data, 'q', sizeof data);
        linebuf_init(&b, 16, 32, MAX_BUF, LINEBUF_RESET_FF);
        feed(&b, data, sizeof data, 17, LIMIT, &s);
        assert_string_equal(s.text, "T");
        feed(&b, "qq\xff{}\n", 6, 6, LIMIT, &s);
        assert_string_equal(s.text, "T[{}]");
        linebuf_free(&b);
}

/* Linear in the input: 0xFF floods (all 0xFF, 0xFF between every byte, 0xFF then a
 * newline) cost each byte a bounded number of looks, whatever the read size: the
 * bytes the scans looked at are counted, not timed. */
static void test_ff_flood_linear(void **state) {
        const size_t size = 4 * 1024 * 1024;
        _cleanup_free_ char *data = malloc(size);
        static const char *const patterns[] = { "\xff", "a\xff", "\xff\n", "\xff\xff\xffx\n" };

        assert_non_null(data);
        for (size_t p = 0; p < ELEMENTSOF(patterns); p++) {
                size_t plen = strlen(patterns[p]);

                for (size_t i = 0; i < size; i++)
                        data[i] = patterns[p][i % plen];
                for (size_t step = 1024; step <= 1024 * 1024; step *= 32) {
                        LineBuf b;
                        Seen s = {};
                        const char *line;
                        size_t len, left = size;
                        const char *src = data;

                        linebuf_init(&b, 64 * 1024, 64 * 1024, 2 * 1024 * 1024, LINEBUF_RESET_FF);
                        while (left > 0) {
                                size_t n = left < step ? left : step, space;
                                char *dst;
                                assert_int_equal(linebuf_reserve(&b, n, &dst, &space), 0);
                                n = n < space ? n : space;
                                memcpy(dst, src, n);
                                linebuf_commit(&b, n);
                                src += n;
                                left -= n;
                                while (linebuf_next(&b, 1024 * 1024, &line, &len) != LINEBUF_NONE)
                                        s.n_lines++;
                        }
                        /* Each byte looked at by the newline scan and the 0xFF scan, at most
                         * twice each (once more after a 0xFF ends a span). */
                        assert_true(b.looked <= 4 * (uint64_t) size);
                        assert_true(b.peak <= 2 * 1024 * 1024);
                        linebuf_free(&b);
                }
        }
}

static void test_memory_shrinks(void **state) {
        const size_t big = 3000;
        _cleanup_free_ char *data = malloc(big + 1);
        LineBuf b;
        Seen s = {};

        assert_non_null(data);
        memset(data, 'w', big);
        data[big] = '\n';
        linebuf_init(&b, 64, 256, 8192, 0);
        feed(&b, data, big + 1, 1000, 8192, &s);
        assert_int_equal(s.n_lines, 1);
        assert_true(b.peak > big);
        linebuf_shrink(&b); /* the owner gives it back once the long line was handled */
        assert_true(b.cap <= 256);
        feed(&b, "short", 5, 5, 8192, &s);
        linebuf_shrink(&b);
        assert_true(b.cap <= 256);
        assert_int_equal(linebuf_pending(&b), 5);
        linebuf_free(&b);
}

static void test_bound_enobufs(void **state) {
        LineBuf b;
        char *dst;
        size_t space;

        /* The owner's limit above the bound: the buffer fills, then refuses. */
        linebuf_init(&b, 16, 16, 32, 0);
        assert_int_equal(linebuf_reserve(&b, 100, &dst, &space), 0);
        assert_int_equal(space, 32);
        memset(dst, 'a', space);
        linebuf_commit(&b, space);
        assert_int_equal(linebuf_next(&b, 1000, NULL, NULL), LINEBUF_NONE);
        assert_int_equal(linebuf_reserve(&b, 1, &dst, &space), -ENOBUFS);
        linebuf_free(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split_reads),
                cmocka_unit_test(test_partial_kept),
                cmocka_unit_test(test_crlf),
                cmocka_unit_test(test_exact_limit),
                cmocka_unit_test(test_over_limit_dropped),
                cmocka_unit_test(test_drop_partial),
                cmocka_unit_test(test_ff_every_position),
                cmocka_unit_test(test_ff_ends_drop),
                cmocka_unit_test(test_ff_flood_linear),
                cmocka_unit_test(test_memory_shrinks),
                cmocka_unit_test(test_bound_enobufs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
