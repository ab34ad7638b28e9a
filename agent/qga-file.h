/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* File transfer through the guest agent (guest-file-read / guest-file-write):
 * strict base64 and the checks on what the guest sends back. Pure functions,
 * no I/O; the transport is qga.h. */

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* guest-file-read refuses a larger count (qemu-ga's QGA_READ_COUNT_MAX); the
 * supervisor refuses it before the guest sees it (interface.md). */
#define QGA_FILE_READ_CHUNK_MIB 48
#define QGA_FILE_READ_CHUNK_MAX (QGA_FILE_READ_CHUNK_MIB * 1024U * 1024U)
/* qemu-ga's JSON parser refuses a message whose tokens add up to this or more
 * ("JSON token size limit exceeded"). */
#define QGA_AGENT_MESSAGE_MAX (64U * 1024U * 1024U)
/* The largest chunk one guest-file-write may carry: what fits the agent's
 * limit in base64, less 64 KiB of room for the rest of the command. */
#define QGA_FILE_WRITE_CHUNK_MAX (QGA_AGENT_MESSAGE_MAX / 4U * 3U - 64U * 1024U)

/* Characters needed to encode size bytes with padding (no terminating NUL);
 * SIZE_MAX when that does not fit a size_t. */
size_t qga_b64_encoded_size(size_t size);
/* Bytes that len characters of base64 decode to at most. */
size_t qga_b64_decoded_max(size_t len);

/* Encodes in[0..size) as RFC 4648 base64 (standard alphabet, padded) into out,
 * which holds out_size characters; no NUL is written. Returns 0 and the
 * length in *ret_len (may be NULL), or -ENOBUFS when out is too small. */
int qga_b64_encode(const void *in, size_t size, char *out, size_t out_size, size_t *ret_len);

/* Decodes exactly len characters of RFC 4648 base64: standard alphabet, len a
 * multiple of 4, '=' padding only at the very end, unused bits of the last
 * character zero, no white space or NUL. A long string may be decoded in
 * pieces split at multiples of 4 characters (padding only in the last piece).
 * Returns 0 and the decoded size in *ret_size (may be NULL); -EINVAL on any
 * malformed input, -ENOBUFS when out_size is too small (checked before
 * anything is written). On -EINVAL out may hold a partial result. */
int qga_b64_decode(const char *in, size_t len, void *out, size_t out_size, size_t *ret_size);

/* Checks the "return" of guest-file-read — an object with integer "count",
 * string "buf-b64" and boolean "eof" — and decodes the data into buf.
 * buf_size is the count that was asked for: a guest sending more is lying.
 * Returns 0 with the size and eof flag (either may be NULL), or -EPROTO for a
 * malformed reply, a count that does not match the data, or more data than
 * asked for. */
int qga_file_read_parse(json_t *result, void *buf, size_t buf_size, size_t *ret_size, bool *ret_eof);

/* The same for the whole reply line (without its '\n'), straight from the text:
 * no JSON value is built and the base64 is decoded from where it lies. Takes
 * only the shape qemu-ga writes, {"return": {"count": N, "buf-b64": "...",
 * "eof": B}} with the three keys in any order, white space anywhere JSON
 * allows it, and every check of the path through jansson and
 * qga_file_read_parse() (no duplicate key, nothing after the object, the
 * count a plain integer equal to the decoded size and within buf_size, strict
 * base64). Returns 1 and the size and eof flag (either may be NULL) when the
 * reply is that and is correct: the path through jansson would have given the
 * same. Returns 0 for anything else — another shape, an escape in a string,
 * an unknown key, a wrong count, bad base64 — which the caller then judges the
 * slow way (the reply may be an error, or malformed). buf may have been
 * written to either way. */
int qga_file_read_scan(const char *line, size_t len, void *buf, size_t buf_size, size_t *ret_size,
                       bool *ret_eof);

/* The guest-file-write command line is QGA_FILE_WRITE_PREFIX (printf format:
 * handle, size), the base64 of the data, then QGA_FILE_WRITE_SUFFIX (with the
 * '\n'). "count" is included so a short write is visible. */
#define QGA_FILE_WRITE_PREFIX \
        "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":%" PRIi64 ",\"count\":%zu,\"buf-b64\":\""
#define QGA_FILE_WRITE_SUFFIX "\"}}\n"

/* Builds the guest-file-write command line for data[0..size), base64-encoded
 * in place (no intermediate copies; "count" is included so a short write is
 * visible). The line ends with '\n'. Returns 0, -EINVAL for a negative
 * handle, -EMSGSIZE when size exceeds QGA_FILE_WRITE_CHUNK_MAX, -ENOMEM. */
int qga_file_write_line(int64_t handle, const void *data, size_t size, char **ret_line, size_t *ret_len);
