/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _noreturn_ __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _warn_unused_result_ __attribute__((warn_unused_result))

/* The text of a macro's value: STRINGIFY(FOO) with #define FOO 48 is "48". */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define INT_TO_PTR(i) ((void *) (intptr_t) (i))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)

/* True when x equals one of the following values. */
#define IN_SET(x, first, ...)                                                   \
        ({                                                                      \
                typeof(x) _x_ = (x);                                            \
                const typeof(x) _set_[] = { first, __VA_ARGS__ };               \
                bool _found_ = false;                                           \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_set_); _i_++)            \
                        if (_set_[_i_] == _x_) {                                \
                                _found_ = true;                                 \
                                break;                                          \
                        }                                                       \
                _found_;                                                        \
        })

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Hand ownership on: returns the value and resets the variable. */
#define TAKE_GENERIC(var, type, nullvalue)                     \
        ({                                                     \
                type *_pvar_ = &(var);                         \
                type _var_ = *_pvar_;                          \
                type _nullvalue_ = nullvalue;                  \
                *_pvar_ = _nullvalue_;                         \
                _var_;                                         \
        })
#define TAKE_PTR(ptr) TAKE_GENERIC(ptr, typeof(ptr), NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, int, -EBADF)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes and returns -EBADF; keeps errno intact. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Defines a cleanup function "<func>p" for a destructor that returns NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        *p = func(*p);                  \
        }

/* An array of strings terminated by NULL. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char * const *l);
/* Appends a copy of s; returns 0 or -ENOMEM. */
int strv_extend(char ***l, const char *s);
int strv_extendf(char ***l, const char *fmt, ...) _printf_(2, 3);

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}
static inline bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Returns errno as a negative value, never 0 (for use after a failed libc call). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* Parses an unsigned decimal number without sign, white space or overflow; returns 0 or -EINVAL/-ERANGE. */
int safe_atou64(const char *s, uint64_t *ret);

uint64_t now_usec(int clock_id);

/* A QAPI name (QMP command names): letters, digits, '-', '_' and '.', 1 to max characters. */
bool qapi_name_is_valid(const char *s, size_t max);

/* The one rule for text from QEMU, the guest or a caller that goes into a message or a log
 * line: printable ASCII stays, anything else becomes '?'. */
typedef enum TextFlags {
        TEXT_NO_SPACE = 1 << 0, /* a space becomes '?' too (names) */
        TEXT_MARK_CUT = 1 << 1, /* a text that does not fit ends in "..." */
} TextFlags;
static inline char text_char(char c, TextFlags flags) {
        unsigned char u = (unsigned char) c;
        return u >= ((flags & TEXT_NO_SPACE) ? 0x21 : 0x20) && u < 0x7f ? c : '?';
}
/* Copies src[0..src_len) (src may be NULL: empty) by that rule into dst: at most
 * dst_size - 1 bytes, NUL-terminated (dst_size 0: nothing is written). Returns dst. */
char *text_sanitize(char *dst, size_t dst_size, const char *src, size_t src_len, TextFlags flags);
