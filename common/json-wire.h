/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* JSON that leaves the supervisor for QEMU's monitor or the guest agent.
 *
 * The supervisor judges requests with jansson; QEMU and qemu-ga read them with
 * QEMU's own parser (qobject/json-*.c). Where the two differ, a request could
 * mean one thing to the judge and another to the executor. The differences that
 * matter are closed here, once, for every path (docs/security.md has the list):
 *
 *  - nesting: QEMU's streamer stops at 1024 levels, reports an error without an
 *    id, forgets what it read and parses the rest of the line as new commands.
 *    Nothing deeper than JSON_WIRE_DEPTH_MAX leaves.
 *  - noncharacters (U+FDD0..U+FDEF, U+nFFFE, U+nFFFF): jansson accepts them,
 *    QEMU refuses the whole request with an error without an id.
 *  - NUL: QEMU turns "\u0000" into the bytes C0 80, which C string functions
 *    see as text where jansson's readers see the end of the string.
 *  - token count: QEMU's streamer also resets past 2 Mi tokens.
 *
 * Both functions are pure. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Objects and arrays nested in one request at most, the request's own braces
 * counting as the first level. Real commands need a handful (blockdev-add with
 * an inline backing chain one level per image); QEMU and qemu-ga stop at 1024. */
#define JSON_WIRE_DEPTH_MAX 64U
/* JSON tokens in one line at most (QEMU's streamer: 2 Mi). */
#define JSON_WIRE_TOKENS_MAX (1024U * 1024U)

/* U+FDD0..U+FDEF and the last two code points of every plane. */
static inline bool unicode_is_noncharacter(uint32_t cp) {
        return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* A string's bytes as QEMU and qemu-ga read them back: no NUL, valid UTF-8, no
 * noncharacter. */
bool json_wire_text_ok(const char *s, size_t n);

/* Checks a parsed value that is about to be forwarded (a request, with v as
 * its outermost object): at most max_depth nested objects and arrays (v counts
 * if it is one), every string and key free of NUL and noncharacters and valid
 * UTF-8. Returns 0, -E2BIG (too deep) or -EILSEQ (a character). */
int json_wire_check_value(json_t *v, unsigned max_depth);

/* Checks the text of one request as it will be written (without its '\n'):
 * exactly one JSON object, nested at most max_depth (at most 64) deep, at most
 * JSON_WIRE_TOKENS_MAX tokens, strings of valid UTF-8 without control bytes,
 * NUL (raw or "\u0000"), lone surrogates or noncharacters (raw or escaped), no
 * byte outside strings that JSON does not use. This is what jansson's
 * JSON_COMPACT output of a checked value looks like. Returns 0, -E2BIG (too
 * deep), -EILSEQ (a character or escape), -EMSGSIZE (too many tokens) or
 * -EINVAL (not one well-formed object). */
int json_wire_check_line(const char *s, size_t n, unsigned max_depth);

/* A reply of QEMU's or the agent's whose only member is "return": writes that
 * value as json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII)
 * of json_loadb(line, len, JSON_REJECT_DUPLICATES) would, byte for byte, straight
 * from the line (no JSON value built, the text allocated at its size). Handles the
 * plain shapes replies have: values nested at most JSON_WIRE_DEPTH_MAX deep,
 * integers of at most 18 digits, objects of at most 32 keys without escapes in
 * them. Anything else (fractions, long integers, escaped keys, an "error" reply,
 * whatever jansson refuses) is declined, for the caller to parse with jansson,
 * which then decides. Returns 1 with the NUL-terminated text in *ret (free()) and
 * its length in *ret_len (may be NULL), 0 when declined, -ENOMEM, -EINVAL. */
int json_wire_reply_return(const char *line, size_t len, char **ret, size_t *ret_len);
