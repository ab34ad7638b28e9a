/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>

#include "linebuf.h"
#include "macro.h"

void linebuf_init(LineBuf *b, size_t initial, size_t keep, size_t max, unsigned flags) {
        *b = (LineBuf) {
                .initial = initial,
                .keep = keep,
                .max = max,
                .flags = flags,
        };
}

void linebuf_free(LineBuf *b) {
        b->data = mfree(b->data);
        b->cap = b->len = b->start = b->scan = 0;
        b->dropping = false;
}

static size_t size_max(size_t a, size_t b) {
        return a > b ? a : b;
}

/* Moves the unprocessed bytes to the front. */
static void linebuf_compact(LineBuf *b) {
        if (b->start == 0)
                return;
        memmove(b->data, b->data + b->start, b->len - b->start);
        b->len -= b->start;
        b->scan -= b->start;
        b->start = 0;
}

int linebuf_reserve(LineBuf *b, size_t want, char **ret_space, size_t *ret_size) {
        if (want == 0)
                want = 1;
        linebuf_compact(b);
        if (b->cap - b->len < want) {
                size_t n = size_max(size_max(b->cap * 2, b->len + want), b->initial);

                if (n > b->max)
                        n = b->max;
                if (n > b->cap) {
                        char *p = realloc(b->data, n);
                        if (!p)
                                return -ENOMEM;
                        b->data = p;
                        b->cap = n;
                        b->peak = size_max(b->peak, n);
                }
                if (b->cap == b->len)
                        return -ENOBUFS;
        }
        *ret_space = b->data + b->len;
        *ret_size = b->cap - b->len;
        return 0;
}

void linebuf_commit(LineBuf *b, size_t n) {
        assert(n <= b->cap - b->len);
        b->len += n;
}

LineBufResult linebuf_next(LineBuf *b, size_t limit, const char **ret_line, size_t *ret_len) {
        bool reset_ff = b->flags & LINEBUF_RESET_FF;

        for (;;) {
                char *p = b->data + b->scan;
                size_t n = b->len - b->scan;
                char *nl = n > 0 ? memchr(p, '\n', n) : NULL;
                size_t span = nl ? (size_t) (nl - p) : n;
                /* The last 0xFF before the next '\n': one pass over the span however many
                 * it holds (a line of them must not cost a newline search each). */
                char *ff = reset_ff && span > 0 ? memrchr(p, 0xFF, span) : NULL;
                size_t line_start, end;

                b->looked += span + (nl ? 1 : 0) + (ff ? span - (size_t) (ff - p) : reset_ff ? span : 0);
                if (ff) {
                        b->dropping = false;
                        b->start = b->scan = (size_t) (ff - b->data) + 1;
                        continue;
                }
                if (!nl)
                        break;

                line_start = b->start;
                end = (size_t) (nl - b->data);
                b->start = b->scan = end + 1;
                if (b->dropping) {
                        b->dropping = false;
                        return LINEBUF_DROPPED;
                }
                if ((b->flags & LINEBUF_STRIP_CR) && end > line_start && b->data[end - 1] == '\r')
                        end--;
                if (ret_line)
                        *ret_line = b->data + line_start;
                if (ret_len)
                        *ret_len = end - line_start;
                return LINEBUF_LINE;
        }

        /* No complete line left: what remains is the start of one, or of the line dropped. */
        if (b->dropping) {
                b->len = b->start = b->scan = 0;
                return LINEBUF_NONE;
        }
        b->scan = b->len;
        linebuf_compact(b); /* once per read: only the tail moves */
        if (b->len > limit) {
                b->len = b->start = b->scan = 0;
                b->dropping = true;
                linebuf_shrink(b);
                return LINEBUF_TOO_LONG;
        }
        return LINEBUF_NONE;
}

void linebuf_drop_partial(LineBuf *b) {
        if (b->len > b->start)
                b->dropping = true;
        b->len = b->start = b->scan = 0;
}

void linebuf_shrink(LineBuf *b) {
        char *p;

        if (b->cap <= b->keep)
                return;
        if (b->len == b->start) {
                bool dropping = b->dropping; /* only the memory goes */

                linebuf_free(b);
                b->dropping = dropping;
                return;
        }
        if (b->len - b->start > b->keep / 2)
                return;
        linebuf_compact(b);
        p = realloc(b->data, b->keep);
        if (!p)
                return;
        b->data = p;
        b->cap = b->keep;
}
