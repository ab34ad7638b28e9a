/* SPDX-License-Identifier: LGPL-2.1-or-later */
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

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
        int saved_errno = errno;
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level) {
                errno = saved_errno;
                return -error;
        }
        errno = error; /* for %m */
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (log_syslog_prefix)
                fprintf(stderr, "<%d>%s\n", level, buf);
        else if (log_max_level >= LOG_DEBUG)
                fprintf(stderr, "vmsupd: %s (%s:%d %s)\n", buf, file, line, func);
        else
                fprintf(stderr, "vmsupd: %s\n", buf);
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
