/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The run record (supervisor/state-file.c) that the next supervisor reads before it
 * adopts a QEMU, and the /proc texts it compares it with. The input is the file's
 * content (and, for the /proc parsers, the text of /proc/PID/stat or cmdline).
 * Checked: a record that parses formats back to exactly the same bytes (the form is
 * canonical: one spelling per record), its fields are within the documented ranges, a
 * refusal names its reason and stores nothing; the same bytes read from a private file
 * through run_record_read() give the same answer. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "state-file.h"

static char dir[] = "/tmp/vmsup-fuzz-state.XXXXXX";

static void remove_dir(void) {
        run_record_remove(dir);
        (void) rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        FUZZ_ASSERT(mkdtemp(dir));
        atexit(remove_dir);
        return 0;
}

static void check_proc_parsers(const char *buf, size_t len) {
        char argv0[RUN_RECORD_EXE_MAX];
        uint64_t v;

        FUZZ_ASSERT(proc_stat_field(buf, len, 3, &v) == -EINVAL);
        for (unsigned f = 4; f <= 23; f++) {
                int r = proc_stat_field(buf, len, f, &v);
                FUZZ_ASSERT(r == 0 || r == -EBADMSG);
        }
        (void) proc_stat_start_time(buf, len, &v);
        if (proc_cmdline_argv0(buf, len, argv0, sizeof argv0) == 0) {
                size_t n = strnlen(argv0, sizeof argv0);
                FUZZ_ASSERT(n < sizeof argv0);
                FUZZ_ASSERT(n <= len);
                FUZZ_ASSERT(memcmp(argv0, buf, n) == 0);
        }
}

static void check_file(const uint8_t *data, size_t size, int want, const RunRecord *want_r) {
        char path[sizeof dir + sizeof "/" RUN_RECORD_FILE];
        RunRecord r;
        const char *err = NULL;
        int fd, k;

        snprintf(path, sizeof path, "%s/%s", dir, RUN_RECORD_FILE);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        FUZZ_ASSERT(fd >= 0);
        FUZZ_ASSERT(write(fd, data, size) == (ssize_t) size);
        close(fd);
        k = run_record_read(dir, &r, &err);
        if (size > RUN_RECORD_MAX)
                FUZZ_ASSERT(k == -EBADMSG && err);
        else {
                FUZZ_ASSERT(k == want);
                if (k == 0)
                        FUZZ_ASSERT(memcmp(&r, want_r, sizeof r) == 0);
                else
                        FUZZ_ASSERT(err && *err);
        }
        run_record_remove(dir);
        FUZZ_ASSERT(access(path, F_OK) < 0 && errno == ENOENT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        RunRecord r, again;
        const char *err = NULL;
        char buf[RUN_RECORD_MAX + 1];
        int k, n;

        memset(&r, 0x5a, sizeof r);
        k = run_record_parse((const char *) data, size, &r, &err);
        if (k < 0) {
                RunRecord untouched;
                memset(&untouched, 0x5a, sizeof untouched);
                FUZZ_ASSERT(k == -EBADMSG);
                FUZZ_ASSERT(err && *err);
                FUZZ_ASSERT(memcmp(&r, &untouched, sizeof r) == 0);
        } else {
                FUZZ_ASSERT(k == 0);
                FUZZ_ASSERT(r.qemu_pid > 0 && r.launcher_pid > 0 && r.qemu_pid != r.launcher_pid);
                FUZZ_ASSERT(r.qemu_exe[0] == '/');
                n = run_record_format(&r, buf, sizeof buf);
                FUZZ_ASSERT(n >= 0);
                /* Canonical: what parsed is exactly what the writer would have written. */
                FUZZ_ASSERT((size_t) n == size && memcmp(buf, data, size) == 0);
                FUZZ_ASSERT(run_record_parse(buf, (size_t) n, &again, &err) == 0);
                FUZZ_ASSERT(memcmp(&r, &again, sizeof r) == 0);
        }
        check_file(data, size, k, &r);
        check_proc_parsers((const char *) data, size);
        return 0;
}
