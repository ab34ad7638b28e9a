/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* json_wire_reply_return(): a reply's "return" value re-written straight from the line
 * must be exactly what jansson would read and write (json_loadb with
 * JSON_REJECT_DUPLICATES, json_dumps with JSON_COMPACT | JSON_ENCODE_ANY |
 * JSON_ENSURE_ASCII), and everything jansson refuses or reads differently is left to
 * it. Checked on hand-written lines (replies qemu-ga writes, and every shape that
 * must be declined) and on a few hundred thousand generated and mutated ones. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-wire.h"
#include "macro.h"

/* What jansson makes of line: its text, or NULL when it refuses the line or the
 * line is not a reply with "return" as its only member. */
static char *jansson_text(const char *line, size_t len) {
        json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        char *s = NULL;

        if (json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "return"))
                s = json_dumps(json_object_get(v, "return"), JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        json_decref(v);
        return s;
}

/* Returns 1 when re-written (and then equal to jansson's text), 0 when declined. */
static int same_as_jansson(const char *line, size_t len) {
        _cleanup_free_ char *text = NULL, *want = NULL;
        size_t n = SIZE_MAX;
        int r = json_wire_reply_return(line, len, &text, &n);

        assert_true(r == 0 || r == 1);
        if (r == 0)
                return 0;
        want = jansson_text(line, len);
        if (!want || strcmp(want, text) != 0) {
                print_message("line %.*s\n  re-written %s\n  jansson    %s\n", (int) len, line, text,
                              want ?: "(refused)");
                fail();
        }
        assert_int_equal(n, strlen(text));
        return 1;
}

static int check(const char *line) {
        return same_as_jansson(line, strlen(line));
}

/* Each of lines is re-written, as jansson writes it (want 1), or left to jansson (want 0). */
static void check_all(const char *const *lines, size_t n, int want) {
        for (size_t i = 0; i < n; i++)
                if (check(lines[i]) != want) {
                        print_message("%s: %s\n", want ? "left to jansson, should be re-written"
                                                       : "re-written, should be left to jansson", lines[i]);
                        fail();
                }
}

static void test_agent_replies(void **state) {
        /* As qemu-ga writes them: spaces after ':' and ','. */
        static const char *const lines[] = {
                "{\"return\": {}}",
                "{\"return\": []}",
                "{\"return\": 1234567890}",
                "{\"return\": -42}",
                "{\"return\": 0}",
                "{\"return\": true}",
                "{\"return\": null}",
                "{\"return\": {\"version\": \"7.2.22\", \"supported_commands\": [{\"enabled\": true, "
                "\"name\": \"guest-get-cpustats\", \"success-response\": true}, {\"enabled\": false, "
                "\"name\": \"guest-exec\", \"success-response\": true}]}}",
                "{\"return\": {\"pid\": 1234}}\r",
                "  {\t\"return\"\t:\r[ 1 , 2 ,[ ], { } ] }  ",
                "{\"return\": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}",
        };
        check_all(lines, ELEMENTSOF(lines), 1);
}

static void test_strings(void **state) {
        static const char *const lines[] = {
                /* Escapes are decoded and written as jansson writes them. */
                "{\"return\": \"a\\/b\\\\c\\\"d\\n\\t\\r\\b\\f\"}",
                "{\"return\": \"\\u0041\\u00e9\\u00E9\\u001f\\u007f\\u0080\"}",
                /* Raw UTF-8 goes out escaped (ENSURE_ASCII), beyond the BMP as a surrogate pair. */
                "{\"return\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
                "{\"return\": \"\\ud83d\\ude00\"}",
                /* Noncharacters and DEL: jansson takes them. */
                "{\"return\": \"\xef\xb7\x90 \xef\xbf\xbf \x7f \\uffff\"}",
                "{\"return\": {\"k\xc3\xa9y\": 1}}",
                "{\"return\": \"\"}",
        };
        check_all(lines, ELEMENTSOF(lines), 1);
}

static void test_declined(void **state) {
        static const char *const lines[] = {
                /* Not a plain result: jansson decides. */
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}",
                "{\"return\": {}, \"id\": 1}",
                "{\"id\": 1, \"return\": {}}",
                "{\"retur\\u006e\": {}}",
                "[{\"return\": {}}]",
                "{\"return\": {}} x",
                "{\"return\": {}}}",
                "{\"return\": }",
                "{\"return\": {}",
                "",
                "{}",
                /* Numbers jansson reads otherwise, or refuses. */
                "{\"return\": 1.5}",
                "{\"return\": 1e3}",
                "{\"return\": -0}",
                "{\"return\": 01}",
                "{\"return\": 1234567890123456789}",
                "{\"return\": 99999999999999999999999}",
                "{\"return\": +1}",
                "{\"return\": 1x}",
                "{\"return\": truex}",
                "{\"return\": True}",
                /* Strings jansson refuses. */
                "{\"return\": \"a\\u0000b\"}",
                "{\"return\": \"\\ud800\"}",
                "{\"return\": \"\\udc00\"}",
                "{\"return\": \"\\ud800\\u0041\"}",
                "{\"return\": \"\\x41\"}",
                "{\"return\": \"\\'\"}",
                "{\"return\": \"tab\there\"}",
                "{\"return\": \"\xc0\xaf\"}",
                "{\"return\": \"\xed\xa0\x80\"}",
                "{\"return\": \"\xf4\x90\x80\x80\"}",
                "{\"return\": \"\xff\"}",
                "{\"return\": \"unterminated}",
                /* Duplicate keys (refused by jansson), and keys left to it. */
                "{\"return\": {\"a\": 1, \"a\": 2}}",
                "{\"return\": {\"a\": 1, \"b\": {\"c\": 1, \"c\": 1}}}",
                "{\"return\": {\"a\": 1, \"\\u0061\": 2}}",
                "{\"return\": {\"\\n\": 1}}",
                "{\"return\": [1,]}",
                "{\"return\": [,1]}",
                "{\"return\": {\"a\" 1}}",
                "{\"return\": {1: 2}}",
        };

        check_all(lines, ELEMENTSOF(lines), 0);
        /* A raw NUL and a raw newline inside the line. */
        assert_int_equal(same_as_jansson("{\"return\": \"a\0b\"}", 16), 0);
        assert_int_equal(same_as_jansson("{\"return\": \"a\nb\"}", 16), 0);
}

static void test_limits(void **state) {
        char line[8192];
        size_t n;

        /* Nested up to JSON_WIRE_DEPTH_MAX with the reply's own braces: re-written; deeper: declined. */
        for (unsigned depth = JSON_WIRE_DEPTH_MAX - 2; depth <= JSON_WIRE_DEPTH_MAX + 1; depth++) {
                n = (size_t) snprintf(line, sizeof line, "{\"return\": ");
                for (unsigned i = 0; i < depth; i++)
                        line[n++] = '[';
                for (unsigned i = 0; i < depth; i++)
                        line[n++] = ']';
                line[n++] = '}';
                assert_int_equal(same_as_jansson(line, n), depth + 1 <= JSON_WIRE_DEPTH_MAX ? 1 : 0);
        }
        /* 32 keys in one object: re-written; 33: left to jansson. */
        for (unsigned keys = 32; keys <= 33; keys++) {
                n = (size_t) snprintf(line, sizeof line, "{\"return\": {");
                for (unsigned i = 0; i < keys; i++)
                        n += (size_t) snprintf(line + n, sizeof line - n, "%s\"k%u\": %u", i ? ", " : "", i, i);
                n += (size_t) snprintf(line + n, sizeof line - n, "}}");
                assert_int_equal(same_as_jansson(line, n), keys <= 32 ? 1 : 0);
        }
        /* 18 digits: re-written; 19: left to jansson. */
        assert_int_equal(check("{\"return\": -999999999999999999}"), 1);
        assert_int_equal(check("{\"return\": 1000000000000000000}"), 0);
}

/* ---- generated lines ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t n) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return (uint32_t) (rng_state % n);
}

typedef struct Gen {
        char buf[4096];
        size_t n;
} Gen;

static void put(Gen *g, const char *s) {
        size_t k = strlen(s);
        if (g->n + k < sizeof g->buf)
                memcpy(g->buf + g->n, s, k), g->n += k;
}

static void ws(Gen *g) {
        static const char *const w[] = { "", "", "", " ", "  ", "\t", "\r", "\n" };
        put(g, w[rnd(ELEMENTSOF(w))]);
}

static void gen_string(Gen *g) {
        static const char *const pieces[] = {
                "a", "Z", "0", " ", "/", "\\/", "\\\\", "\\\"", "\\n", "\\t", "\\b", "\\f", "\\r", "\\u0041", "\\u00e9",
                "\\u001F", "\\u007f", "\\u0000", "\\ud83d\\ude00", "\\ud800", "\\udc00", "\xc3\xa9", "\xe2\x82\xac",
                "\xf0\x9f\x98\x80", "\xef\xbf\xbe", "\x7f", "\x01", "\xc0\x80", "\xff", "\\x", "guest-",
        };
        put(g, "\"");
        for (unsigned i = rnd(6); i > 0; i--)
                put(g, pieces[rnd(ELEMENTSOF(pieces))]);
        put(g, "\"");
}

static void gen_value(Gen *g, unsigned depth) {
        static const char *const scalars[] = { "0", "1", "-1", "42", "-0", "1.5", "1e2", "007", "123456789012345678",
                                               "1234567890123456789", "true", "false", "null", "nul", "tru" };
        unsigned kind = depth > 6 ? rnd(2) : rnd(4);

        ws(g);
        if (kind == 0)
                put(g, scalars[rnd(ELEMENTSOF(scalars))]);
        else if (kind == 1)
                gen_string(g);
        else if (kind == 2) {
                put(g, "[");
                for (unsigned i = 0, k = rnd(4); i < k; i++) {
                        if (i)
                                put(g, ",");
                        gen_value(g, depth + 1);
                }
                ws(g);
                put(g, "]");
        } else {
                static const char *const keys[] = { "\"a\"", "\"b\"", "\"name\"", "\"\\u0061\"", "\"k\xc3\xa9\"", "\"\"" };
                put(g, "{");
                for (unsigned i = 0, k = rnd(4); i < k; i++) {
                        if (i)
                                put(g, ",");
                        ws(g);
                        put(g, keys[rnd(ELEMENTSOF(keys))]);
                        ws(g);
                        put(g, ":");
                        gen_value(g, depth + 1);
                }
                ws(g);
                put(g, "}");
        }
        ws(g);
}

static void test_generated(void **state) {
        unsigned rewritten = 0, declined = 0;

        for (unsigned round = 0; round < 200000; round++) {
                Gen g = { .n = 0 };

                put(&g, "{\"return\":");
                gen_value(&g, 1);
                put(&g, "}");
                /* Every fourth line mutated: a byte changed, dropped or doubled. */
                if (round % 4 == 3 && g.n > 1) {
                        size_t at = rnd((uint32_t) g.n);
                        switch (rnd(3)) {
                        case 0:
                                g.buf[at] = (char) rnd(256);
                                break;
                        case 1:
                                memmove(g.buf + at, g.buf + at + 1, g.n - at - 1);
                                g.n--;
                                break;
                        default:
                                if (g.n + 1 < sizeof g.buf) {
                                        memmove(g.buf + at + 1, g.buf + at, g.n - at);
                                        g.n++;
                                }
                        }
                }
                if (same_as_jansson(g.buf, g.n))
                        rewritten++;
                else
                        declined++;
        }
        print_message("generated lines: %u re-written (each equal to jansson's text), %u left to jansson\n", rewritten,
                      declined);
        /* Both paths taken often: the comparison above was made many times. */
        assert_true(rewritten > 20000 && declined > 20000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_agent_replies),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_declined),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_generated),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
