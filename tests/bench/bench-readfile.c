/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Agent1.ReadFile of a large guest file against the same guest-file-read sequence sent
 * straight to a second guest's agent socket, and the supervisor's memory meanwhile.
 *
 * Both guests are the tiny test guest with the same definition (booted side by side,
 * under TCG). Both sides sync before every agent command (the supervisor's default),
 * read in the supervisor's chunk size, decode the reply with the supervisor's own
 * qga_file_read_scan() (jansson and qga_file_read_parse() for another shape), and write
 * the bytes into the same kind of sink: a 1 MiB pipe drained by a thread that checksums
 * everything (CRC-32, compared with the guest's own `busybox crc32` of the file).
 * WriteFile likewise: a pipe filled by a thread against the lines of
 * qga_file_write_line() on the raw socket, both files checked with the guest's crc32. */

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bench.h"
#include "qga-file.h"

/* supervisor/agent-file.c FILE_READ_CHUNK and FILE_WRITE_CHUNK: what one guest-file-read
 * asks for, what one guest-file-write carries. */
#define SUP_FILE_CHUNK (4U * 1024U * 1024U)
#define SUP_WRITE_CHUNK (8U * 1024U * 1024U)
#define GUEST_FILE "/tmp/big"
#define GUEST_WFILE "/tmp/big-written"
#define PEAK_READ_BYTES (48U * 1024U * 1024U)

/* ---- the sink ---- */

typedef struct Sink {
        int rfd, wfd;
        pthread_t thread;
        uint64_t bytes;
        uint32_t crc;
        int error;
} Sink;

static void *sink_drain(void *userdata) {
        Sink *s = userdata;
        size_t cap = 1024 * 1024;
        uint8_t *buf = malloc(cap);

        if (!buf) {
                s->error = -ENOMEM;
                return NULL;
        }
        for (;;) {
                ssize_t k = read(s->rfd, buf, cap);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        s->error = -errno;
                        break;
                }
                if (k == 0)
                        break;
                s->crc = crc32_update(s->crc, buf, (size_t) k);
                s->bytes += (uint64_t) k;
        }
        free(buf);
        return NULL;
}

static int sink_open(Sink *s) {
        int p[2];

        *s = (Sink) { .rfd = -1, .wfd = -1 };
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        s->rfd = p[0];
        s->wfd = p[1];
        (void) fcntl(s->wfd, F_SETPIPE_SZ, 1024 * 1024);
        if (pthread_create(&s->thread, NULL, sink_drain, s) != 0) {
                safe_close(s->rfd);
                safe_close(s->wfd);
                return -EAGAIN;
        }
        return 0;
}

/* ---- the source (WriteFile) ---- */

/* A pipe a thread fills with size bytes of data, then closes. */
typedef struct Source {
        int rfd, wfd;
        pthread_t thread;
        const uint8_t *data;
        uint64_t size;
        int error;
} Source;

static void *source_fill(void *userdata) {
        Source *s = userdata;
        uint64_t off = 0;

        while (off < s->size) {
                size_t n = s->size - off < 1024 * 1024 ? (size_t) (s->size - off) : 1024 * 1024;
                ssize_t k = write(s->wfd, s->data + off, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        s->error = -errno;
                        break;
                }
                off += (uint64_t) k;
        }
        s->wfd = safe_close(s->wfd);
        return NULL;
}

static int source_open(Source *s, const uint8_t *data, uint64_t size) {
        int p[2];

        *s = (Source) { .rfd = -1, .wfd = -1, .data = data, .size = size };
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        s->rfd = p[0];
        s->wfd = p[1];
        (void) fcntl(s->wfd, F_SETPIPE_SZ, 1024 * 1024);
        if (pthread_create(&s->thread, NULL, source_fill, s) != 0) {
                safe_close(s->rfd);
                safe_close(s->wfd);
                return -EAGAIN;
        }
        return 0;
}

/* The read end is the caller's to close (it was passed over the bus: ours is a copy). */
static int source_finish(Source *s) {
        s->rfd = safe_close(s->rfd); /* a writer still blocked gets EPIPE */
        pthread_join(s->thread, NULL);
        return s->error == -EPIPE ? 0 : s->error;
}

/* Closes the write end, waits until everything written is consumed. */
static int sink_finish(Sink *s) {
        s->wfd = safe_close(s->wfd);
        pthread_join(s->thread, NULL);
        s->rfd = safe_close(s->rfd);
        return s->error;
}

/* ---- one transfer per side ---- */

static int sup_read_file(sd_bus *bus, const char *dest, uint64_t length, Sink *s, uint64_t *ret_bytes) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        uint64_t bytes;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, dest, BUS_VM_PATH, "org.vmsup.Agent1", "ReadFile");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "stth", GUEST_FILE, (uint64_t) 0, length, s->wfd);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 600 * USEC_PER_SEC, &error, &reply);
        if (r < 0) {
                fprintf(stderr, "vmsup-bench: ReadFile: %s: %s\n", error.name ?: "", error.message ?: strerror(-r));
                return r;
        }
        r = sd_bus_message_read(reply, "t", &bytes);
        if (r < 0)
                return r;
        *ret_bytes = bytes;
        return 0;
}

static int sup_write_file(sd_bus *bus, const char *dest, Source *src, uint64_t *ret_bytes) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        uint64_t bytes;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, dest, BUS_VM_PATH, "org.vmsup.Agent1", "WriteFile");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "shb", GUEST_WFILE, src->rfd, 0);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 600 * USEC_PER_SEC, &error, &reply);
        if (r < 0) {
                fprintf(stderr, "vmsup-bench: WriteFile: %s: %s\n", error.name ?: "", error.message ?: strerror(-r));
                return r;
        }
        r = sd_bus_message_read(reply, "t", &bytes);
        if (r < 0)
                return r;
        *ret_bytes = bytes;
        return 0;
}

/* The same guest-file-open/write/flush/close sequence on the agent socket, in the
 * supervisor's chunk size, the lines built by the supervisor's own qga_file_write_line(). */
static int raw_write_file(RawQga *g, const uint8_t *data, uint64_t size, uint64_t *ret_bytes) {
        json_auto_t *h = NULL;
        char cmd[256];
        uint64_t done = 0;
        int64_t handle;
        int r = 0, rc;

        r = raw_qga_command(
                g, "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"" GUEST_WFILE "\",\"mode\":\"w\"}}", &h);
        if (r < 0)
                return r;
        if (!json_is_integer(h))
                return -EBADMSG;
        handle = json_integer_value(h);
        while (done < size) {
                size_t n = size - done < SUP_WRITE_CHUNK ? (size_t) (size - done) : SUP_WRITE_CHUNK;
                json_auto_t *ret = NULL;
                _cleanup_free_ char *line = NULL;
                size_t len;

                r = qga_file_write_line(handle, data + done, n, &line, &len);
                if (r < 0)
                        break;
                line[len - 1] = '\0'; /* raw_qga_command() adds the newline */
                r = raw_qga_command(g, line, &ret);
                if (r < 0)
                        break;
                json_t *cnt = json_object_get(ret, "count");
                if (!json_is_integer(cnt) || (uint64_t) json_integer_value(cnt) != n) {
                        r = -EPROTO;
                        break;
                }
                done += n;
        }
        snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-flush\",\"arguments\":{\"handle\":%" PRIi64 "}}", handle);
        if (r >= 0)
                r = raw_qga_command(g, cmd, NULL);
        snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":%" PRIi64 "}}", handle);
        rc = raw_qga_command(g, cmd, NULL);
        if (r < 0)
                return r;
        if (rc < 0)
                return rc;
        *ret_bytes = done;
        return 0;
}

static int write_all_fd(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int raw_read_file(RawQga *g, uint64_t length, Sink *s, uint64_t *ret_bytes) {
        _cleanup_free_ uint8_t *buf = malloc(SUP_FILE_CHUNK);
        json_auto_t *h = NULL;
        char cmd[256];
        uint64_t done = 0;
        int64_t handle;
        bool eof = false;
        int r, rc;

        if (!buf)
                return -ENOMEM;
        r = raw_qga_command(
                g, "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"" GUEST_FILE "\",\"mode\":\"r\"}}", &h);
        if (r < 0)
                return r;
        if (!json_is_integer(h))
                return -EBADMSG;
        handle = json_integer_value(h);
        while (!eof && (length == 0 || done < length)) {
                uint64_t count = SUP_FILE_CHUNK;
                json_auto_t *v = NULL;
                char *line;
                size_t len, n = 0;

                if (length > 0 && length - done < count)
                        count = length - done;
                snprintf(cmd, sizeof cmd,
                         "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":%" PRIi64
                         ",\"count\":%" PRIu64 "}}",
                         handle, count);
                r = raw_qga_command_line(g, cmd, &line, &len);
                if (r < 0)
                        break;
                /* The cheapest correct reading there is: the supervisor's own. */
                if (qga_file_read_scan(line, len, buf, (size_t) count, &n, &eof) > 0)
                        goto got;
                v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
                if (!json_is_object(v) || !json_object_get(v, "return")) {
                        r = -EPROTO;
                        break;
                }
                r = qga_file_read_parse(json_object_get(v, "return"), buf, (size_t) count, &n, &eof);
                if (r < 0)
                        break;
        got:
                if (n == 0)
                        eof = true;
                r = write_all_fd(s->wfd, buf, n);
                if (r < 0)
                        break;
                done += n;
        }
        snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":%" PRIi64 "}}", handle);
        rc = raw_qga_command(g, cmd, NULL);
        if (r < 0)
                return r;
        if (rc < 0)
                return rc;
        *ret_bytes = done;
        return 0;
}

/* ---- guest-exec on either side ---- */

typedef struct Guest {
        bool raw;
        sd_bus *bus;
        const char *dest;
        RawQga *qga;
} Guest;

static int guest_command(Guest *g, const char *cmd, json_t **ret) {
        if (g->raw)
                return raw_qga_command(g->qga, cmd, ret);
        _cleanup_free_ char *err = NULL;
        int r = bus_agent_command(g->bus, g->dest, cmd, ret, &err);
        if (r < 0 && err)
                fprintf(stderr, "vmsup-bench: agent: %s\n", err);
        return r;
}

static int guest_exec_start(Guest *g, const char *argv_json, bool capture, int64_t *ret_pid) {
        _cleanup_free_ char *cmd = strf("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/busybox\","
                                        "\"arg\":%s,\"capture-output\":%s}}",
                                        argv_json, capture ? "true" : "false");
        json_auto_t *ret = NULL;
        int r = guest_command(g, cmd, &ret);
        if (r < 0)
                return r;
        json_t *pid = json_object_get(ret, "pid");
        if (!json_is_integer(pid))
                return -EBADMSG;
        *ret_pid = json_integer_value(pid);
        return 0;
}

/* Returns 1 when exited (status copied), 0 while running. */
static int guest_exec_poll(Guest *g, int64_t pid, json_t **ret_status) {
        _cleanup_free_ char *cmd = strf("{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":%" PRIi64 "}}", pid);
        json_auto_t *ret = NULL;
        int r = guest_command(g, cmd, &ret);
        if (r < 0)
                return r;
        if (!json_is_true(json_object_get(ret, "exited")))
                return 0;
        json_t *code = json_object_get(ret, "exitcode");
        if (!json_is_integer(code) || json_integer_value(code) != 0)
                return -EIO;
        *ret_status = TAKE_PTR(ret);
        return 1;
}

/* Runs argv in both guests at once; out[i] gets each one's decoded stdout (may be NULL). */
static int guest_exec_both(Guest *gs, const char *argv_json, bool capture, char **out, uint64_t timeout_s) {
        int64_t pids[2];
        bool done[2] = {};
        uint64_t deadline = now_ns() + timeout_s * UINT64_C(1000000000);
        int r;

        for (int i = 0; i < 2; i++)
                if ((r = guest_exec_start(&gs[i], argv_json, capture, &pids[i])) < 0)
                        return r;
        while (!done[0] || !done[1]) {
                if (now_ns() > deadline)
                        return -ETIMEDOUT;
                usleep(300 * 1000);
                for (int i = 0; i < 2; i++) {
                        json_auto_t *st = NULL;
                        if (done[i])
                                continue;
                        r = guest_exec_poll(&gs[i], pids[i], &st);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                continue;
                        done[i] = true;
                        if (out) {
                                json_t *o = json_object_get(st, "out-data");
                                const char *b64 = json_is_string(o) ? json_string_value(o) : "";
                                size_t len = strlen(b64), n = 0;
                                char *dec = calloc(1, qga_b64_decoded_max(len) + 1);
                                if (!dec || qga_b64_decode(b64, len, dec, qga_b64_decoded_max(len), &n) < 0) {
                                        free(dec);
                                        return -EBADMSG;
                                }
                                dec[n] = '\0';
                                out[i] = dec;
                        }
                }
        }
        return 0;
}

/* ---- the section ---- */

static int wait_agents(sd_bus *bus, const char *dest, RawQga *qga, uint64_t timeout_s) {
        uint64_t deadline = now_ns() + timeout_s * UINT64_C(1000000000);
        bool sup_ok = false, raw_ok = false;

        while (!sup_ok || !raw_ok) {
                if (now_ns() > deadline)
                        return sup_ok ? -EHOSTDOWN : -ENOTCONN;
                if (!sup_ok) {
                        bool b = false;
                        if (bus_get_bool(bus, dest, "AgentConnected", &b) >= 0 && b)
                                sup_ok = true;
                }
                if (!raw_ok) {
                        if (raw_qga_sync(qga, 500 * USEC_PER_MSEC) >= 0)
                                raw_ok = true;
                } else
                        usleep(200 * 1000);
        }
        return 0;
}

/* WriteFile of size random bytes from a pipe against the same guest-file-write sequence
 * on the raw agent socket, and the peak RSS meanwhile. The written files are
 * checked with the guests' own crc32. */
static void bench_writefile(sd_bus *bus, const char *dest, pid_t pid, Guest *gs, uint64_t size) {
        static const char *f_tput = "WriteFile throughput, guest file under TCG";
        _cleanup_free_ uint8_t *data = malloc(size);
        Samples s_sup = {}, s_raw = {};
        uint64_t cpu_sup = 0, hwm = 0;
        uint32_t crc_want;
        char *crc_out[2] = {};
        int r;

        if (!data) {
                row_error("writefile", f_tput, "≥ 95 % of raw", "out of memory");
                return;
        }
        for (uint64_t i = 0; i < size; i++)
                data[i] = (uint8_t) ((i * 2654435761U) >> 13);
        crc_want = crc32_update(0, data, size);
        /* Room in the guests' tmpfs. */
        (void) guest_exec_both(gs, "[\"rm\",\"-f\",\"" GUEST_FILE "\"]", false, NULL, 120);

        (void) proc_reset_hwm(pid);
        for (unsigned i = 0; i < cfg.readfile_runs; i++)
                for (unsigned side = 0; side < 2; side++) {
                        bool sup = (side == 0) == (i % 2 == 0);
                        uint64_t bytes = 0, t0, t1, c0 = 0, c1 = 0;

                        (void) proc_cpu_ns(pid, &c0);
                        t0 = now_ns();
                        if (sup) {
                                Source src;
                                r = source_open(&src, data, size);
                                if (r >= 0) {
                                        r = sup_write_file(bus, dest, &src, &bytes);
                                        int r2 = source_finish(&src);
                                        if (r >= 0)
                                                r = r2;
                                }
                        } else
                                r = raw_write_file(gs[1].qga, data, size, &bytes);
                        t1 = now_ns();
                        (void) proc_cpu_ns(pid, &c1);
                        if (r >= 0 && bytes != size)
                                r = -EBADMSG;
                        if (r < 0) {
                                row_error("writefile", f_tput, "≥ 95 % of raw", "%s transfer failed: %s",
                                          sup ? "vmsupd" : "raw", strerror(-r));
                                goto finish;
                        }
                        if (sup)
                                cpu_sup += c1 - c0;
                        samples_add(sup ? &s_sup : &s_raw, t1 - t0);
                }
        (void) proc_status_kib(pid, "VmHWM", &hwm);

        r = guest_exec_both(gs, "[\"crc32\",\"" GUEST_WFILE "\"]", true, crc_out, 600);
        for (int i = 0; r >= 0 && i < 2; i++) {
                uint32_t c = 0;
                if (!crc_out[i] || sscanf(crc_out[i], "%8" SCNx32, &c) != 1 || c != crc_want)
                        r = -EBADMSG;
        }
        if (r < 0) {
                row_error("writefile", f_tput, "≥ 95 % of raw", "the written files differ: %s", strerror(-r));
                goto finish;
        }
        {
                double mib = (double) size / (1024.0 * 1024.0);
                double sup_rate = mib / (samples_pct(&s_sup, 50) / 1e9);
                double raw_rate = mib / (samples_pct(&s_raw, 50) / 1e9);
                double ratio = sup_rate / raw_rate;
                double ms_per_mib = (double) cpu_sup / 1e6 / (mib * s_sup.n);
                json_t *d = json_pack("{s:f,s:f,s:f,s:o,s:o,s:I}", "vmsupd_mib_per_s", sup_rate, "raw_mib_per_s",
                                      raw_rate, "ratio", ratio, "vmsupd_seconds", samples_json(&s_sup, 1e9),
                                      "raw_seconds", samples_json(&s_raw, 1e9), "vmhwm_kib", (json_int_t) hwm);
                _cleanup_free_ char *fig = strf("%s (%" PRIu64 " MiB, %u runs per side)", f_tput, size >> 20,
                                                cfg.readfile_runs),
                                    *a = strf("%.1f MiB/s (median of %zu)", sup_rate, s_sup.n),
                                    *b = strf("agent socket, %u MiB writes, sync before each: %.1f MiB/s",
                                              SUP_WRITE_CHUNK >> 20, raw_rate),
                                    *c = strf("%.0f %%", ratio * 100);
                row_add("writefile", fig, a, b, c, "≥ 95 % of raw", ratio >= 0.95 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);

                _cleanup_free_ char *fc = strf("supervisor CPU per MiB written (WriteFile, %u MiB chunks)",
                                               SUP_WRITE_CHUNK >> 20),
                                    *ac = strf("%.2f ms", ms_per_mib);
                d = json_pack("{s:f,s:I}", "ms_per_mib", ms_per_mib, "cpu_ns", (json_int_t) cpu_sup);
                row_add("writefile_cpu", fc, ac, NULL, NULL, "≤ 2 ms", ms_per_mib <= 2.0 ? VERDICT_MET : VERDICT_MISSED,
                        d);
                json_decref(d);

                _cleanup_free_ char *fp = strf("supervisor peak RSS (VmHWM) during the %" PRIu64 " MiB WriteFiles",
                                               size >> 20),
                                    *ap = strf("VmHWM %.1f MiB", hwm / 1024.0);
                d = json_pack("{s:I}", "vmhwm_kib", (json_int_t) hwm);
                row_add("writefile_peak", fp, ap, NULL, NULL, "≤ 16 MiB", hwm <= 16 * 1024 ? VERDICT_MET : VERDICT_MISSED,
                        d);
                json_decref(d);
        }
finish:
        free(crc_out[0]);
        free(crc_out[1]);
        samples_free(&s_sup);
        samples_free(&s_raw);
}

void bench_readfile(void) {
        _cleanup_free_ char *f_peak = NULL;
        static const char *f_tput = "ReadFile throughput, guest file under TCG";
        static const char *f_mem = "supervisor memory, idle, running guest with agent connected";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *dest = vm_dest("bguest"), *dd_args = NULL;
        char *crc_out[2] = {};
        uint32_t crc[2] = {}, qemu_pid = 0;
        Samples s_sup = {}, s_raw = {};
        RawQemu raw;
        RawQga qga = { .in = { .fd = -1 } };
        uint64_t size = (uint64_t) cfg.readfile_mib * 1024 * 1024;
        pid_t pid;
        int r;

        pid = vmsupd_spawn("bguest");
        r = raw_qemu_start("rawguest", &raw); /* boots while the supervisor's guest boots */
        if (r < 0) {
                row_error("readfile", f_tput, "≥ 95 % of raw", "raw guest did not start: %s", strerror(-r));
                goto finish;
        }
        raw_qga_init(&qga, TAKE_FD(raw.qga_fd));
        r = pid < 0 ? pid : vmsupd_wait_ready(&pid, 1, 120 * USEC_PER_SEC);
        if (r >= 0)
                r = bus_open(&bus);
        if (r >= 0)
                r = bus_get_u32(bus, dest, "Pid", &qemu_pid);
        if (r < 0) {
                row_error("readfile", f_tput, "≥ 95 % of raw", "vmsupd did not come up: %s", strerror(-r));
                goto finish;
        }
        r = wait_agents(bus, dest, &qga, 240);
        if (r < 0) {
                row_error("readfile", f_tput, "≥ 95 % of raw", "%s guest agent did not answer",
                          r == -EHOSTDOWN ? "raw" : "supervised");
                goto finish;
        }

        Guest gs[2] = {
                { .raw = false, .bus = bus, .dest = dest },
                { .raw = true, .qga = &qga },
        };
        uint64_t t_prep = now_ns();
        dd_args = strf("[\"dd\",\"if=/dev/urandom\",\"of=" GUEST_FILE "\",\"bs=1M\",\"count=%u\"]", cfg.readfile_mib);
        r = guest_exec_both(gs, dd_args, false, NULL, 600);
        if (r >= 0)
                r = guest_exec_both(gs, "[\"crc32\",\"" GUEST_FILE "\"]", true, crc_out, 600);
        for (int i = 0; r >= 0 && i < 2; i++)
                if (!crc_out[i] || sscanf(crc_out[i], "%8" SCNx32, &crc[i]) != 1)
                        r = -EBADMSG;
        if (r < 0) {
                row_error("readfile", f_tput, "≥ 95 % of raw", "preparing the guest files failed: %s", strerror(-r));
                goto finish;
        }
        note_add("ReadFile: both guests got a %u MiB random file (dd + crc32 in the guest took %.0f s).",
                 cfg.readfile_mib, (double) (now_ns() - t_prep) / 1e9);

        if (section_enabled("memory")) {
                sleep(1);
                memory_row("mem_idle_guest", f_mem, pid, (pid_t) qemu_pid);
        }

        /* Peak: one ReadFile of 48 MiB (the contract's largest chunk; the supervisor moves it
         * in its own chunks, FILE_READ_CHUNK). */
        if (section_enabled("readfile")) {
                uint64_t want = size < PEAK_READ_BYTES ? size : PEAK_READ_BYTES;
                Sink sk;
                uint64_t bytes = 0, hwm0 = 0, hwm = 0;
                (void) proc_status_kib(pid, "VmRSS", &hwm0);
                r = proc_reset_hwm(pid);
                if (r >= 0)
                        r = sink_open(&sk);
                if (r >= 0) {
                        r = sup_read_file(bus, dest, want, &sk, &bytes);
                        int r2 = sink_finish(&sk);
                        if (r >= 0)
                                r = r2;
                }
                f_peak = strf("supervisor peak RSS (VmHWM) during a %" PRIu64 " MiB ReadFile", want >> 20);
                if (r >= 0 && (bytes != want || sk.bytes != want))
                        r = -EBADMSG;
                if (r >= 0)
                        r = proc_status_kib(pid, "VmHWM", &hwm);
                uint64_t rss_after = 0;
                (void) proc_status_kib(pid, "VmRSS", &rss_after);
                if (r < 0)
                        row_error("readfile_peak", f_peak, "≤ 16 MiB", "%s", strerror(-r));
                else {
                        json_t *d = json_pack("{s:I,s:I,s:I,s:I,s:i}", "vmhwm_kib", (json_int_t) hwm, "rss_before_kib",
                                              (json_int_t) hwm0, "rss_after_kib", (json_int_t) rss_after, "bytes",
                                              (json_int_t) bytes, "supervisor_chunk_bytes", (int) SUP_FILE_CHUNK);
                        _cleanup_free_ char *a = strf("VmHWM %.1f MiB (RSS before %.1f MiB, after %.1f MiB; "
                                                      "the supervisor reads %u MiB chunks)",
                                                      hwm / 1024.0, hwm0 / 1024.0, rss_after / 1024.0,
                                                      SUP_FILE_CHUNK >> 20);
                        row_add("readfile_peak", f_peak, a, NULL, NULL, "≤ 16 MiB",
                                hwm <= 16 * 1024 ? VERDICT_MET : VERDICT_MISSED, d);
                        json_decref(d);
                }
        }

        /* The largest read a caller may ask the agent for directly: guest-file-read of 48 MiB
         * through Agent1.Command. Its reply (64 MiB of base64) is over the 16 MiB bus limit: the
         * supervisor must refuse it with ResponseTooLarge without holding it. */
        if (section_enabled("readfile-command")) {
                _cleanup_free_ char *fig = strf("supervisor peak RSS (VmHWM) during Agent1.Command guest-file-read "
                                                "count=48 MiB (%" PRIu64 " MiB file)", size >> 20),
                                    *err = NULL, *cmd = NULL;
                json_auto_t *h = NULL;
                uint64_t hwm = 0, rss_after = 0;
                r = bus_agent_command(bus, dest,
                                      "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"" GUEST_FILE
                                      "\",\"mode\":\"r\"}}",
                                      &h, &err);
                if (r >= 0 && !json_is_integer(h))
                        r = -EBADMSG;
                if (r >= 0)
                        r = proc_reset_hwm(pid);
                if (r >= 0) {
                        err = mfree(err);
                        cmd = strf("{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":%" PRIi64
                                   ",\"count\":%u}}",
                                   (int64_t) json_integer_value(h), PEAK_READ_BYTES);
                        int rr = bus_agent_command(bus, dest, cmd, NULL, &err);
                        /* The only right answer. */
                        r = rr < 0 && err && startswith(err, VMSUP_ERROR_RESPONSE_TOO_LARGE) ? 0 : -EBADMSG;
                }
                if (r >= 0)
                        r = proc_status_kib(pid, "VmHWM", &hwm);
                (void) proc_status_kib(pid, "VmRSS", &rss_after);
                if (json_is_integer(h)) {
                        _cleanup_free_ char *close_cmd = strf("{\"execute\":\"guest-file-close\",\"arguments\":{"
                                                              "\"handle\":%" PRIi64 "}}",
                                                              (int64_t) json_integer_value(h));
                        (void) bus_agent_command(bus, dest, close_cmd, NULL, NULL);
                }
                if (r < 0)
                        row_error("readcmd_peak", fig, "≤ 96 MiB", "%s (answer: %s)", strerror(-r), err ?: "success");
                else {
                        json_t *d = json_pack("{s:I,s:I,s:s}", "vmhwm_kib", (json_int_t) hwm, "rss_after_kib",
                                              (json_int_t) rss_after, "answer", err);
                        _cleanup_free_ char *a = strf("VmHWM %.1f MiB, RSS after %.1f MiB; answered ResponseTooLarge",
                                                      hwm / 1024.0, rss_after / 1024.0);
                        row_add("readcmd_peak", fig, a, NULL, NULL, "≤ 96 MiB",
                                hwm <= 96 * 1024 ? VERDICT_MET : VERDICT_MISSED, d);
                        json_decref(d);
                }
        }

        /* Throughput, alternating sides. */
        if (!section_enabled("readfile"))
                goto writes;
        uint64_t hwm_all = 0, cpu_sup = 0;
        (void) proc_reset_hwm(pid);
        for (unsigned i = 0; i < cfg.readfile_runs; i++)
                for (unsigned side = 0; side < 2; side++) {
                        bool sup = (side == 0) == (i % 2 == 0);
                        Sink sk;
                        uint64_t bytes = 0, t0, t1;
                        r = sink_open(&sk);
                        if (r < 0)
                                goto tput_failed;
                        uint64_t c0 = 0, c1 = 0;
                        (void) proc_cpu_ns(pid, &c0);
                        t0 = now_ns();
                        r = sup ? sup_read_file(bus, dest, 0, &sk, &bytes) : raw_read_file(&qga, 0, &sk, &bytes);
                        int r2 = sink_finish(&sk);
                        t1 = now_ns();
                        (void) proc_cpu_ns(pid, &c1);
                        if (sup)
                                cpu_sup += c1 - c0;
                        if (r >= 0)
                                r = r2;
                        if (r >= 0 && (bytes != size || sk.bytes != size || sk.crc != crc[sup ? 0 : 1]))
                                r = -EBADMSG;
                        if (r < 0) {
                                fprintf(stderr, "vmsup-bench: %s ReadFile: %" PRIu64 " bytes, crc %08x (want %08x)\n",
                                        sup ? "vmsupd" : "raw", sk.bytes, sk.crc, crc[sup ? 0 : 1]);
                                goto tput_failed;
                        }
                        samples_add(sup ? &s_sup : &s_raw, t1 - t0);
                }
        (void) proc_status_kib(pid, "VmHWM", &hwm_all);
        {
                double mib = (double) size / (1024.0 * 1024.0);
                double sup_rate = mib / (samples_pct(&s_sup, 50) / 1e9);
                double raw_rate = mib / (samples_pct(&s_raw, 50) / 1e9);
                double ratio = sup_rate / raw_rate;
                json_t *d = json_pack("{s:s,s:i,s:i,s:f,s:f,s:f,s:o,s:o,s:I,s:s}", "unit", "s", "file_mib",
                                      (int) cfg.readfile_mib, "chunk_bytes", (int) SUP_FILE_CHUNK, "vmsupd_mib_per_s",
                                      sup_rate, "raw_mib_per_s", raw_rate, "ratio", ratio, "vmsupd_seconds",
                                      samples_json(&s_sup, 1e9), "raw_seconds", samples_json(&s_raw, 1e9),
                                      "vmhwm_during_kib", (json_int_t) hwm_all, "raw_is",
                                      "guest-sync-delimited before each of guest-file-open/read/close on the agent "
                                      "socket of a second, identical guest");
                _cleanup_free_ char *fig = strf("%s (%u MiB, %u runs per side)", f_tput, cfg.readfile_mib,
                                                cfg.readfile_runs),
                                    *a = strf("%.1f MiB/s (median of %zu)", sup_rate, s_sup.n),
                                    *b = strf("agent socket, %u MiB reads, sync before each: %.1f MiB/s", SUP_FILE_CHUNK >> 20, raw_rate),
                                    *c = strf("%.0f %%", ratio * 100);
                row_add("readfile", fig, a, b, c, "≥ 95 % of raw", ratio >= 0.95 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);

                double ms_per_mib = (double) cpu_sup / 1e6 / (mib * s_sup.n);
                _cleanup_free_ char *fc = strf("supervisor CPU per MiB read (ReadFile, %u MiB chunks)", SUP_FILE_CHUNK >> 20),
                                    *ac = strf("%.2f ms", ms_per_mib);
                d = json_pack("{s:f,s:I,s:f}", "ms_per_mib", ms_per_mib, "cpu_ns", (json_int_t) cpu_sup, "mib",
                              mib * s_sup.n);
                row_add("readfile_cpu", fc, ac, NULL, NULL, "≤ 2 ms", ms_per_mib <= 2.0 ? VERDICT_MET : VERDICT_MISSED,
                        d);
                json_decref(d);
                note_add("ReadFile: supervisor VmHWM over the %u MiB transfers: %.1f MiB.", cfg.readfile_mib,
                         hwm_all / 1024.0);
                note_add("ReadFile raw side: guest-sync-delimited before each guest-file-open/read/close (the "
                         "supervisor's default, one sync per command), %u MiB reads (supervisor/agent-file.c "
                         "FILE_READ_CHUNK), decoded with the supervisor's qga_file_read_scan(); both sides write into "
                         "a 1 MiB pipe drained by a thread that CRCs every byte.",
                         SUP_FILE_CHUNK >> 20);
        }
writes:
        if (section_enabled("writefile"))
                bench_writefile(bus, dest, pid, gs, size);
        goto finish;

tput_failed:
        row_error("readfile", f_tput, "≥ 95 % of raw", "transfer failed: %s", strerror(-r));
finish:
        free(crc_out[0]);
        free(crc_out[1]);
        samples_free(&s_sup);
        samples_free(&s_raw);
        raw_qga_close(&qga);
        raw_qemu_free(&raw);
        if (pid > 0)
                processes_stop(&pid, 1, 30 * USEC_PER_SEC);
}
