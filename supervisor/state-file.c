/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The run record (see state-file.h). */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "state-file.h"

#define PID_LIMIT 4194304 /* PID_MAX_LIMIT on 64-bit */

static bool exe_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= RUN_RECORD_EXE_MAX || s[0] != '/')
                return false;
        for (; *s; s++)
                if (*s <= 0x20 || *s >= 0x7f)
                        return false;
        return true;
}

int run_record_format(const RunRecord *r, char *buf, size_t size) {
        int k;

        if (r->qemu_pid <= 0 || r->qemu_pid > PID_LIMIT || r->launcher_pid <= 0 || r->launcher_pid > PID_LIMIT ||
            !exe_valid(r->qemu_exe))
                return -EINVAL;
        k = snprintf(buf, size,
                     "vmsup-run 1\nqemu_pid %d\nqemu_start %" PRIu64 "\nqemu_exe %s\n"
                     "launcher_pid %d\nlauncher_start %" PRIu64 "\n",
                     (int) r->qemu_pid, r->qemu_start, r->qemu_exe, (int) r->launcher_pid,
                     r->launcher_start);
        if (k < 0 || (size_t) k >= size || (size_t) k > RUN_RECORD_MAX)
                return -ENOBUFS;
        return k;
}

/* A decimal number: no sign, no leading zero, at most max. */
static bool parse_u64(const char *s, size_t n, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                if (v > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

/* The next line must be "key value": returns the value's start and length. */
static bool next_line(const char **p, const char *end, const char *key, const char **ret_value,
                      size_t *ret_len) {
        size_t klen = strlen(key);
        const char *nl = memchr(*p, '\n', (size_t) (end - *p));

        if (!nl || (size_t) (nl - *p) <= klen + 1 || memcmp(*p, key, klen) != 0 || (*p)[klen] != ' ')
                return false;
        *ret_value = *p + klen + 1;
        *ret_len = (size_t) (nl - *ret_value);
        *p = nl + 1;
        return true;
}

int run_record_parse(const char *buf, size_t len, RunRecord *ret, const char **ret_error) {
        static const char header[] = "vmsup-run 1\n";
        const char *p = buf, *end = buf + len, *v;
        RunRecord r = {};
        uint64_t n;
        size_t vl;

#define FAIL(msg) do { *ret_error = (msg); return -EBADMSG; } while (0)
        if (len > RUN_RECORD_MAX)
                FAIL("too long");
        if (memchr(buf, '\0', len))
                FAIL("contains a NUL byte");
        if (len < sizeof header - 1 || memcmp(buf, header, sizeof header - 1) != 0)
                FAIL("not a run record of version 1");
        p += sizeof header - 1;
        if (!next_line(&p, end, "qemu_pid", &v, &vl) || !parse_u64(v, vl, PID_LIMIT, &n) || n == 0)
                FAIL("bad qemu_pid line");
        r.qemu_pid = (pid_t) n;
        if (!next_line(&p, end, "qemu_start", &v, &vl) || !parse_u64(v, vl, UINT64_MAX, &r.qemu_start))
                FAIL("bad qemu_start line");
        if (!next_line(&p, end, "qemu_exe", &v, &vl) || vl >= sizeof r.qemu_exe)
                FAIL("bad qemu_exe line");
        memcpy(r.qemu_exe, v, vl);
        if (!exe_valid(r.qemu_exe))
                FAIL("bad qemu_exe line");
        if (!next_line(&p, end, "launcher_pid", &v, &vl) || !parse_u64(v, vl, PID_LIMIT, &n) || n == 0)
                FAIL("bad launcher_pid line");
        r.launcher_pid = (pid_t) n;
        if (!next_line(&p, end, "launcher_start", &v, &vl) || !parse_u64(v, vl, UINT64_MAX, &r.launcher_start))
                FAIL("bad launcher_start line");
        if (p != end)
                FAIL("trailing data");
        if (r.qemu_pid == r.launcher_pid)
                FAIL("QEMU and its launcher have the same pid");
#undef FAIL
        *ret = r;
        return 0;
}

int proc_stat_field(const char *buf, size_t len, unsigned want, uint64_t *ret) {
        const char *p = NULL, *end = buf + len;
        unsigned field = 2; /* the last ')' ends field 2 */

        if (want < 4)
                return -EINVAL; /* the state (3) is a letter */

        for (const char *q = buf; q < end; q++)
                if (*q == ')')
                        p = q;
        if (!p)
                return -EBADMSG;
        p++;
        while (p < end) {
                const char *s;
                while (p < end && *p == ' ')
                        p++;
                s = p;
                while (p < end && *p != ' ' && *p != '\n')
                        p++;
                if (s == p)
                        break;
                if (++field == want)
                        return parse_u64(s, (size_t) (p - s), UINT64_MAX, ret) ? 0 : -EBADMSG;
                if (p < end && *p == '\n')
                        break;
        }
        return -EBADMSG;
}

static int path_in(const char *dir, const char *name, char *buf, size_t size) {
        int k = snprintf(buf, size, "%s/%s", dir, name);
        return k < 0 || (size_t) k >= size ? -ENAMETOOLONG : 0;
}

int run_record_write(const char *dir, const RunRecord *r) {
        char text[RUN_RECORD_MAX + 1], path[4096], tmp[4096];
        _cleanup_close_ int fd = -EBADF;
        int n, k;

        n = run_record_format(r, text, sizeof text);
        if (n < 0)
                return n;
        if (path_in(dir, RUN_RECORD_FILE, path, sizeof path) < 0 ||
            path_in(dir, RUN_RECORD_FILE ".tmp", tmp, sizeof tmp) < 0)
                return -ENAMETOOLONG;
        (void) unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        do
                k = (int) write(fd, text, (size_t) n);
        while (k < 0 && errno == EINTR);
        if (k != n) {
                int e = k < 0 ? -errno : -EIO;
                (void) unlink(tmp);
                return e;
        }
        fd = safe_close(fd);
        if (rename(tmp, path) < 0) {
                int e = -errno;
                (void) unlink(tmp);
                return e;
        }
        return 0;
}

int run_record_read(const char *dir, RunRecord *ret, const char **ret_error) {
        char path[4096], text[RUN_RECORD_MAX + 1];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        ssize_t k;

        if (path_in(dir, RUN_RECORD_FILE, path, sizeof path) < 0)
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                *ret_error = errno == ELOOP ? "a symbolic link" : "cannot be opened";
                return errno == ELOOP ? -EPERM : -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                *ret_error = "not a regular file";
                return -EPERM;
        }
        if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
                *ret_error = "not a private file of the supervisor's user";
                return -EPERM;
        }
        if (st.st_size > (off_t) RUN_RECORD_MAX) {
                *ret_error = "too long";
                return -EBADMSG;
        }
        do
                k = read(fd, text, sizeof text);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        return run_record_parse(text, (size_t) k, ret, ret_error);
}

void run_record_remove(const char *dir) {
        char path[4096];

        if (path_in(dir, RUN_RECORD_FILE, path, sizeof path) == 0)
                (void) unlink(path);
}

int proc_stat_start_time(const char *buf, size_t len, uint64_t *ret) {
        return proc_stat_field(buf, len, 22, ret);
}

int proc_cmdline_argv0(const char *buf, size_t len, char *out, size_t size) {
        const char *nul = memchr(buf, '\0', len);
        size_t n = nul ? (size_t) (nul - buf) : len;

        if (!nul || n == 0 || n >= size)
                return -EBADMSG; /* a changed or truncated command line is no proof */
        memcpy(out, buf, n);
        out[n] = '\0';
        return 0;
}

static ssize_t proc_read(pid_t pid, const char *what, char *buf, size_t size) {
        char path[64];
        _cleanup_close_ int fd = -EBADF;
        ssize_t k;

        (void) snprintf(path, sizeof path, "/proc/%d/%s", (int) pid, what);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        do
                k = read(fd, buf, size);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return errno == ESRCH ? -ESRCH : -errno;
        return k;
}

int proc_parent(pid_t pid, pid_t *ret) {
        char text[2048];
        uint64_t v;
        ssize_t k = proc_read(pid, "stat", text, sizeof text);
        int r;

        if (k < 0)
                return (int) k;
        r = proc_stat_field(text, (size_t) k, 4, &v);
        if (r < 0)
                return r;
        *ret = (pid_t) v;
        return 0;
}

int proc_exe_argv0(pid_t pid, char *buf, size_t size) {
        char text[RUN_RECORD_EXE_MAX + 1];
        ssize_t k = proc_read(pid, "cmdline", text, sizeof text);

        if (k < 0)
                return (int) k;
        return proc_cmdline_argv0(text, (size_t) k, buf, size);
}

int proc_start_time(pid_t pid, uint64_t *ret) {
        char text[2048];
        ssize_t k = proc_read(pid, "stat", text, sizeof text);

        if (k < 0)
                return (int) k;
        return proc_stat_start_time(text, (size_t) k, ret);
}

