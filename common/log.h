/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <syslog.h>

#include "macro.h"

/* Logging goes to stderr with a "<N>" syslog prefix, which journald turns into
 * the priority when the daemon runs under systemd. Library-like code
 * (monitor/, agent/, policy/) logs at debug level only. */

void log_set_max_level(int level);
int log_get_max_level(void);
/* Accepts err|warning|info|debug (and notice); returns the level or -EINVAL. */
int log_level_from_string(const char *s);
void log_set_prefix(bool syslog_prefix);

/* Logs and returns -abs(error) (or 0 for error == 0); "%m" expands to strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

/* The flight recorder: every message, whatever --log-level lets through, also goes into a
 * ring of the last LOG_RING_SIZE messages (with their monotonic time, level and origin;
 * longer texts are cut at LOG_RING_TEXT_MAX bytes). Memory is fixed (about 40 KiB, touched
 * as it fills), nothing is written until log_ring_dump() is called: when something failed,
 * the debug-level story of how it came to be is there even though the log level hid it.
 * The ring is per process (a forked child has its copy), not thread-safe. */
#define LOG_RING_SIZE 160U
#define LOG_RING_TEXT_MAX 224U

/* Writes the recorded messages, oldest first, at level, each prefixed "flight recorder:"
 * and its age relative to now, under a header line naming why; then empties the ring, so
 * that the next dump starts where this one ended. Dumped lines are not recorded again.
 * Returns the number of messages written. */
size_t log_ring_dump(int level, const char *why);
/* Messages recorded since the last dump (at most LOG_RING_SIZE). */
size_t log_ring_size(void);
/* Drops what is recorded. */
void log_ring_clear(void);
