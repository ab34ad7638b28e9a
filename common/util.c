/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

#include "log.h"
#include "macro.h"

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char * const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

static int strv_push(char ***l, char *s) {
        size_t n = strv_length(*l);
        char **nl = realloc(*l, sizeof(char *) * (n + 2));
        if (!nl) {
                free(s);
                return -ENOMEM;
        }
        nl[n] = s;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

int strv_extend(char ***l, const char *s) {
        char *c = strdup(s);
        if (!c)
                return -ENOMEM;
        return strv_push(l, c);
}

int strv_extendf(char ***l, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return strv_push(l, s);
}

int safe_atou64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        *ret = v;
        return 0;
}

uint64_t now_usec(int clock_id) {
        struct timespec ts;
        if (clock_gettime(clock_id, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* ---- logging ---- */

static int log_max_level = LOG_INFO;
static bool log_syslog_prefix = false;

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_prefix(bool syslog_prefix) {
        log_syslog_prefix = syslog_prefix;
}

int log_level_from_string(const char *s) {
        static const struct {
                const char *name;
                int level;
        } table[] = {
                { "err", LOG_ERR },         { "error", LOG_ERR }, { "warning", LOG_WARNING },
                { "notice", LOG_NOTICE },   { "info", LOG_INFO }, { "debug", LOG_DEBUG },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(s, table[i].name))
                        return table[i].level;
        return -EINVAL;
}

/* ---- the flight recorder ---- */

typedef struct LogRingEntry {
        uint64_t usec; /* CLOCK_MONOTONIC */
        const char *file, *func; /* __FILE__ and __func__: static strings */
        int line;
        int level;
        char text[LOG_RING_TEXT_MAX];
} LogRingEntry;

static LogRingEntry log_ring[LOG_RING_SIZE];
static size_t log_ring_next, log_ring_n;

static void log_ring_add(int level, const char *file, int line, const char *func, const char *text, size_t len) {
        LogRingEntry *e = &log_ring[log_ring_next];

        e->usec = now_usec(CLOCK_MONOTONIC);
        e->file = file;
        e->line = line;
        e->func = func;
        e->level = level;
        if (len >= sizeof e->text)
                len = sizeof e->text - 1;
        memcpy(e->text, text, len);
        e->text[len] = '\0';
        log_ring_next = (log_ring_next + 1) % LOG_RING_SIZE;
        if (log_ring_n < LOG_RING_SIZE)
                log_ring_n++;
}

size_t log_ring_size(void) {
        return log_ring_n;
}

void log_ring_clear(void) {
        log_ring_n = 0;
}

static void log_write(int level, const char *text, const char *file, int line, const char *func) {
        if (log_syslog_prefix)
                fprintf(stderr, "<%d>%s\n", level, text);
        else if (log_max_level >= LOG_DEBUG && file)
                fprintf(stderr, "vmsupd: %s (%s:%d %s)\n", text, file, line, func);
        else
                fprintf(stderr, "vmsupd: %s\n", text);
}

size_t log_ring_dump(int level, const char *why) {
        static const char level_char[] = "0123WNID"; /* emerg..err as digits, then W/N/I/D */
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        size_t n = log_ring_n, first = (log_ring_next + LOG_RING_SIZE - n) % LOG_RING_SIZE;
        char buf[LOG_RING_TEXT_MAX + 256];
        int saved_errno = errno;

        (void) snprintf(buf, sizeof buf, "flight recorder: %s: the last %zu messages of every level follow%s", why, n,
                        n == LOG_RING_SIZE ? " (older ones were overwritten)" : "");
        log_write(level, buf, NULL, 0, NULL);
        for (size_t i = 0; i < n; i++) {
                const LogRingEntry *e = &log_ring[(first + i) % LOG_RING_SIZE];
                uint64_t age = now >= e->usec ? now - e->usec : 0;
                const char *base = e->file ? strrchr(e->file, '/') : NULL;

                (void) snprintf(buf, sizeof buf, "flight recorder: -%" PRIu64 ".%06" PRIu64 " s %c %s (%s:%d)",
                                age / USEC_PER_SEC, age % USEC_PER_SEC,
                                e->level >= 0 && e->level <= LOG_DEBUG ? level_char[e->level] : '?', e->text,
                                base ? base + 1 : (e->file ?: "?"), e->line);
                log_write(level, buf, NULL, 0, NULL);
        }
        (void) snprintf(buf, sizeof buf, "flight recorder: end");
        log_write(level, buf, NULL, 0, NULL);
        log_ring_clear();
        errno = saved_errno;
        return n;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
        int saved_errno = errno;
        char buf[2048];
        va_list ap;
        int k;

        if (error < 0)
                error = -error;
        errno = error; /* for %m */
        va_start(ap, fmt);
        k = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        log_ring_add(level, file, line, func, buf, k < 0 ? 0 : (size_t) k);
        if (level <= log_max_level)
                log_write(level, buf, file, line, func);
        errno = saved_errno;
        return -error;
}

char *text_sanitize(char *dst, size_t dst_size, const char *src, size_t src_len, TextFlags flags) {
        size_t max, n;

        if (dst_size == 0)
                return dst;
        max = dst_size - 1;
        n = src ? (src_len < max ? src_len : max) : 0;
        for (size_t i = 0; i < n; i++)
                dst[i] = text_char(src[i], flags);
        if ((flags & TEXT_MARK_CUT) && src && src_len > max && max >= 3)
                memcpy(dst + max - 3, "...", 3);
        dst[n] = '\0';
        return dst;
}

bool qapi_name_is_valid(const char *s, size_t max) {
        size_t n = 0;

        if (!s)
                return false;
        for (; *s; s++, n++)
                if (n >= max || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                                  *s == '-' || *s == '_' || *s == '.'))
                        return false;
        return n > 0;
}
