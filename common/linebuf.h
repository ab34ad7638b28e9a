/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A bounded input buffer that cuts a byte stream into '\n'-terminated lines:
 * the framing shared by the QMP and guest-agent clients.
 *
 * The owner reads into the space linebuf_reserve() gives, reports the bytes with
 * linebuf_commit(), then calls linebuf_next() until it returns LINEBUF_NONE. Lines
 * handed out stay valid until that call: the buffer is compacted once per read, not
 * once per line, so a read of many short lines costs one move.
 *
 * Bounds: the buffer never grows beyond the max given to linebuf_init(). A partial
 * line longer than the limit the owner passes to linebuf_next() is dropped at once
 * (LINEBUF_TOO_LONG), and so is the rest of it as it arrives, without being buffered;
 * the end of such a line is reported (LINEBUF_DROPPED). A complete line is handed out
 * whatever its length (it fitted the buffer): the owner judges it by its own limit.
 *
 * With LINEBUF_RESET_FF a 0xFF byte voids everything before it that is not yet part
 * of a line handed out, a line being dropped included (the guest agent's answer to
 * guest-sync-delimited). Each byte is examined a bounded number of times, whatever
 * the number of 0xFF in the data: the cost is linear in the bytes read. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum LineBufFlags {
        LINEBUF_RESET_FF = 1 << 0, /* 0xFF voids what came before it */
        LINEBUF_STRIP_CR = 1 << 1, /* a '\r' right before the '\n' is not part of the line */
} LineBufFlags;

typedef enum LineBufResult {
        LINEBUF_NONE,     /* no complete line left: read more */
        LINEBUF_LINE,     /* a complete line, without its '\n' */
        LINEBUF_TOO_LONG, /* the partial line exceeded the limit: dropped, and its rest will be */
        LINEBUF_DROPPED,  /* the end of a line being dropped arrived */
} LineBufResult;

typedef struct LineBuf {
        char *data;
        /* [start, len): unprocessed; [start, scan) holds no '\n' (nor 0xFF). */
        size_t cap, len, start, scan;
        size_t peak;
        /* Bytes the scans for '\n' and 0xFF have looked at (statistics, tests). */
        uint64_t looked;
        /* Configuration: first allocation, what is kept once a long line is gone, bound. */
        size_t initial, keep, max;
        unsigned flags;
        bool dropping; /* inside an over-long line, up to its '\n' (or a 0xFF) */
} LineBuf;

/* initial <= keep <= max. */
void linebuf_init(LineBuf *b, size_t initial, size_t keep, size_t max, unsigned flags);
/* Frees the memory; the buffer is empty again (configuration kept). */
void linebuf_free(LineBuf *b);

/* Makes room for at least want bytes (fewer when the bound is reached: at least one)
 * and returns where to read to and how much fits. -ENOBUFS when the buffer is full at
 * its bound (cannot happen when the owner's limit is below max), -ENOMEM. */
int linebuf_reserve(LineBuf *b, size_t want, char **ret_space, size_t *ret_size);
/* n bytes were read into the space last reserved. */
void linebuf_commit(LineBuf *b, size_t n);

/* The next event; limit bounds the partial line left over. For LINEBUF_LINE, *ret_line
 * and *ret_len (either may be NULL) give the line. */
LineBufResult linebuf_next(LineBuf *b, size_t limit, const char **ret_line, size_t *ret_len);

/* Drops the partial line, and, when there was one, the rest of it as it arrives. Not
 * between linebuf_next() calls that still have lines to hand out. */
void linebuf_drop_partial(LineBuf *b);
/* Gives memory back down to keep when little is buffered. */
void linebuf_shrink(LineBuf *b);

/* Bytes of an unfinished line held now (0 while dropping). */
static inline size_t linebuf_pending(const LineBuf *b) {
        return b->len - b->start;
}
static inline bool linebuf_dropping(const LineBuf *b) {
        return b->dropping;
}
