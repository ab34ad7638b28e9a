/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live migration of the tiny guest through two supervisors (Migration1.MigrateIn on the
 * target, MigrateOut on the source, a socket pair as the stream) against the same migration
 * driven straight over QMP on a second pair of QEMUs started with the supervisor's argv:
 * the same capabilities and parameters, getfd of a socket pair's ends and migrate /
 * migrate-incoming on "fd:", then "cont" on the target. The runs alternate sides, and
 * each run moves the guest the other way (the target of one run is the source of the
 * next). Measured on both sides: the wall time from the first command to the source until
 * the guest runs on the target, and QEMU's own downtime and total time (query-migrate). */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MIG_FDNAME "vmsup-migration"
#define MIG_BANDWIDTH (128ULL * 1024ULL * 1024ULL) /* QEMU's default, what MigrateOut sets */
#define MIG_DOWNTIME_MS 300ULL
#define MIG_CALL_USEC (600ULL * USEC_PER_SEC)

typedef struct Reply {
        bool done;
        int r;
        uint64_t at_ns;
} Reply;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Reply *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        p->done = true;
        p->at_ns = now_ns();
        if (e) {
                fprintf(stderr, "vmsup-bench: migration: %s: %s\n", e->name, e->message ?: "");
                p->r = -EIO;
        }
        return 0;
}

static int call_async(sd_bus *bus, const char *name, const char *method, int fd, Reply *p, sd_bus_slot **slot) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *dest = vm_dest(name);
        int r;

        r = sd_bus_message_new_method_call(bus, &m, dest, BUS_VM_PATH, "org.vmsup.Migration1", method);
        if (r >= 0)
                r = sd_bus_message_append(m, "ha{sv}", fd, 0);
        if (r >= 0)
                r = sd_bus_call_async(bus, slot, m, on_reply, p, MIG_CALL_USEC);
        return r;
}

/* GetMigrationStatus: QEMU's total time and downtime in ms. */
static int sup_status(sd_bus *bus, const char *name, uint64_t *ret_total_ms, uint64_t *ret_downtime_ms) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *dest = vm_dest(name);
        const char *key;
        bool completed = false;
        int r;

        *ret_total_ms = *ret_downtime_ms = UINT64_MAX;
        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.vmsup.Migration1", "GetMigrationStatus", &error, &reply,
                               NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *contents;
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, NULL, &contents);
                if (r < 0)
                        return r;
                if (streq(contents, "t") && (streq(key, "total-time-ms") || streq(key, "downtime-ms")))
                        r = sd_bus_message_read(reply, "v", "t",
                                                streq(key, "total-time-ms") ? ret_total_ms : ret_downtime_ms);
                else if (streq(key, "status") && streq(contents, "s")) {
                        const char *st;
                        r = sd_bus_message_read(reply, "v", "s", &st);
                        completed = r >= 0 && streq(st, "completed");
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return r;
        return completed && *ret_total_ms != UINT64_MAX && *ret_downtime_ms != UINT64_MAX ? 0 : -EBADMSG;
}

/* One migration through the supervisors, from → to. */
static int sup_migrate(sd_bus *bus, const char *from, const char *to, uint64_t *ret_wall_ns, uint64_t *ret_total_ms,
                       uint64_t *ret_downtime_ms) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *s_in = NULL, *s_out = NULL;
        _cleanup_free_ char *dest_to = vm_dest(to);
        Reply in = {}, out = {};
        uint64_t t0;
        int sp[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        r = call_async(bus, to, "MigrateIn", sp[1], &in, &s_in);
        safe_close(sp[1]);
        /* As on the raw side, the source starts once the target QEMU waits for the stream. */
        for (unsigned i = 0; r >= 0 && i < 30000; i++) {
                r = bus_get_state(bus, dest_to, "incoming");
                if (r >= 0 || r != -EBADMSG)
                        break;
                r = 0;
                usleep(1000);
        }
        if (r < 0) {
                safe_close(sp[0]);
                return r;
        }
        t0 = now_ns();
        r = call_async(bus, from, "MigrateOut", sp[0], &out, &s_out);
        safe_close(sp[0]);
        while (r >= 0 && (!in.done || !out.done)) {
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, UINT64_MAX);
        }
        if (r < 0)
                return r;
        if (in.r < 0 || out.r < 0)
                return -EIO;
        *ret_wall_ns = in.at_ns - t0;
        r = bus_get_state(bus, dest_to, "running");
        if (r < 0)
                return r;
        return sup_status(bus, from, ret_total_ms, ret_downtime_ms);
}

static int raw_caps(RawQemu *q, bool source) {
        json_auto_t *caps = source ? json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability", "events",
                                               "state", 1, "capability", "auto-converge", "state", 0)
                                   : json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "events", "state", 1);
        return caps ? raw_qmp_command(&q->qmp, "migrate-set-capabilities", caps, NULL) : -ENOMEM;
}

static int raw_getfd(RawQemu *q, int fd) {
        json_auto_t *a = json_pack("{s:s}", "fdname", MIG_FDNAME);
        return a ? raw_qmp_command_fd(&q->qmp, "getfd", a, fd, NULL) : -ENOMEM;
}

static int raw_status(RawQemu *q, const char **ret_status, json_t **ret) {
        json_auto_t *r = NULL;
        int k = raw_qmp_command(&q->qmp, "query-migrate", NULL, &r);
        if (k < 0)
                return k;
        *ret_status = json_string_value(json_object_get(r, "status"));
        if (!*ret_status)
                return -EPROTO;
        *ret = TAKE_PTR(r);
        return 0;
}

/* One migration straight over QMP, src → dst (dst launched with -incoming defer). */
static int raw_migrate(RawQemu *src, RawQemu *dst, uint64_t *ret_wall_ns, uint64_t *ret_total_ms,
                       uint64_t *ret_downtime_ms) {
        json_auto_t *uri = json_pack("{s:s}", "uri", "fd:" MIG_FDNAME),
                    *params = json_pack("{s:I,s:I}", "max-bandwidth", (json_int_t) MIG_BANDWIDTH, "downtime-limit",
                                        (json_int_t) MIG_DOWNTIME_MS);
        uint64_t t0;
        int sp[2], r;

        if (!uri || !params)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        r = raw_caps(dst, false);
        if (r >= 0)
                r = raw_getfd(dst, sp[1]);
        if (r >= 0)
                r = raw_qmp_command(&dst->qmp, "migrate-incoming", uri, NULL);
        safe_close(sp[1]);
        if (r < 0) {
                safe_close(sp[0]);
                return r;
        }
        t0 = now_ns();
        r = raw_caps(src, true);
        if (r >= 0)
                r = raw_qmp_command(&src->qmp, "migrate-set-parameters", params, NULL);
        if (r >= 0)
                r = raw_getfd(src, sp[0]);
        safe_close(sp[0]);
        if (r >= 0)
                r = raw_qmp_command(&src->qmp, "migrate", uri, NULL);
        if (r < 0)
                return r;
        /* The source says completed (with its totals); the target then holds the guest, paused
         * (-S): "cont" there. Polled every millisecond. */
        for (;;) {
                json_auto_t *q = NULL;
                const char *st;
                r = raw_status(src, &st, &q);
                if (r < 0)
                        return r;
                if (streq(st, "failed") || streq(st, "cancelled"))
                        return -EIO;
                if (streq(st, "completed") && json_integer_value(json_object_get(q, "total-time")) > 0) {
                        *ret_total_ms = (uint64_t) json_integer_value(json_object_get(q, "total-time"));
                        *ret_downtime_ms = (uint64_t) json_integer_value(json_object_get(q, "downtime"));
                        break;
                }
                usleep(1000);
        }
        for (;;) {
                json_auto_t *q = NULL;
                const char *st;
                r = raw_status(dst, &st, &q);
                if (r < 0)
                        return r;
                if (streq(st, "completed"))
                        break;
                if (streq(st, "failed"))
                        return -EIO;
                usleep(1000);
        }
        r = raw_qmp_command(&dst->qmp, "cont", NULL, NULL);
        if (r < 0)
                return r;
        *ret_wall_ns = now_ns() - t0;
        return 0;
}

void bench_migrate(void) {
        static const char *f_wall = "live migration, tiny guest (256 MiB, TCG): first command → running on the target";
        static const char *f_down = "live migration: downtime (QEMU's, query-migrate)";
        static const char *f_total = "live migration: QEMU's total time (query-migrate)";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        Samples w_sup = {}, w_raw = {}, d_sup = {}, d_raw = {}, t_sup = {}, t_raw = {};
        RawQemu raw[2];
        pid_t pids[2] = { -1, -1 };
        const char *names[2] = { "bmig1", "bmig2" };
        int r;

        raw[0] = raw[1] = (RawQemu) { .pid = -1, .qga_fd = -1, .qmp = { .in = { .fd = -1 } } };
        pids[0] = vmsupd_spawn(names[0]);
        pids[1] = vmsupd_spawn(names[1]);
        r = raw_qemu_start("rawmig1", &raw[0]);
        if (r >= 0)
                r = raw_qemu_prepare("rawmig2", &raw[1]);
        if (r >= 0) {
                raw[1].incoming = true;
                r = raw_qemu_launch(&raw[1]);
        }
        if (r < 0) {
                row_error("migrate_wall", f_wall, "≤ raw + 5 %", "raw QEMUs did not start: %s", strerror(-r));
                goto finish;
        }
        r = pids[0] < 0 ? pids[0] : pids[1] < 0 ? pids[1] : vmsupd_wait_ready(pids, 2, 120 * USEC_PER_SEC);
        if (r >= 0)
                r = bus_open(&bus);
        if (r < 0) {
                row_error("migrate_wall", f_wall, "≤ raw + 5 %", "vmsupd did not come up: %s", strerror(-r));
                goto finish;
        }
        sleep(cfg.quick ? 2 : 5); /* both guests boot side by side */

        for (unsigned i = 0; i < cfg.migrations; i++)
                for (unsigned side = 0; side < 2; side++) {
                        bool sup = (side == 0) == (i % 2 == 0);
                        uint64_t wall = 0, total = 0, down = 0;
                        if (sup)
                                r = sup_migrate(bus, names[i % 2], names[(i + 1) % 2], &wall, &total, &down);
                        else {
                                RawQemu *src = &raw[i % 2], *dst = &raw[(i + 1) % 2];
                                r = raw_migrate(src, dst, &wall, &total, &down);
                                if (r >= 0) {
                                        /* The source's QEMU goes, and waits as the next run's target. */
                                        raw_qemu_stop(src);
                                        src->incoming = true;
                                        r = raw_qemu_launch(src);
                                }
                        }
                        if (r < 0) {
                                row_error("migrate_wall", f_wall, "≤ raw + 5 %", "%s migration %u failed: %s",
                                          sup ? "vmsupd" : "raw", i, strerror(-r));
                                goto finish;
                        }
                        samples_add(sup ? &w_sup : &w_raw, wall);
                        samples_add(sup ? &d_sup : &d_raw, down);
                        samples_add(sup ? &t_sup : &t_raw, total);
                }

        {
                double ws = samples_pct(&w_sup, 50) / 1e6, wr = samples_pct(&w_raw, 50) / 1e6;
                double ds = samples_pct(&d_sup, 50), dr = samples_pct(&d_raw, 50);
                double ts = samples_pct(&t_sup, 50), tr = samples_pct(&t_raw, 50);
                json_t *d = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:i}", "vmsupd_wall_ms", samples_json(&w_sup, 1e6),
                                      "raw_wall_ms", samples_json(&w_raw, 1e6), "vmsupd_downtime_ms",
                                      samples_json(&d_sup, 1), "raw_downtime_ms", samples_json(&d_raw, 1),
                                      "vmsupd_total_ms", samples_json(&t_sup, 1), "raw_total_ms",
                                      samples_json(&t_raw, 1), "runs_per_side", (int) cfg.migrations);
                _cleanup_free_ char *fig = strf("%s (%u runs per side)", f_wall, cfg.migrations),
                                    *a = strf("%.0f ms (median)", ws), *b = strf("%.0f ms", wr),
                                    *c = strf("%+.1f %%", (ws / wr - 1) * 100), *a2 = strf("%.0f ms (median)", ds),
                                    *b2 = strf("%.0f ms", dr), *c2 = strf("%+.0f ms", ds - dr),
                                    *a3 = strf("%.0f ms (median)", ts), *b3 = strf("%.0f ms", tr),
                                    *c3 = strf("%+.1f %%", (ts / tr - 1) * 100);
                row_add("migrate_wall", fig, a, b, c, "≤ raw + 5 %", ws <= wr * 1.05 ? VERDICT_MET : VERDICT_MISSED, d);
                row_add("migrate_downtime", f_down, a2, b2, c2, "≤ raw + 10 ms",
                        ds <= dr + 10 ? VERDICT_MET : VERDICT_MISSED, d);
                row_add("migrate_total", f_total, a3, b3, c3, NULL, VERDICT_INFO, d);
                json_decref(d);
                note_add("Migration raw side: the same migrate-set-capabilities (events, auto-converge off), "
                         "migrate-set-parameters (max-bandwidth 128 MiB/s, downtime-limit 300 ms), getfd of a socket "
                         "pair's ends and migrate / migrate-incoming \"fd:\" on a second pair of QEMUs with the "
                         "supervisor's argv, query-migrate polled every ms, then cont on the target.");
        }

finish:
        samples_free(&w_sup);
        samples_free(&w_raw);
        samples_free(&d_sup);
        samples_free(&d_raw);
        samples_free(&t_sup);
        samples_free(&t_raw);
        raw_qemu_free(&raw[0]);
        raw_qemu_free(&raw[1]);
        for (unsigned i = 0; i < 2; i++)
                if (pids[i] > 0)
                        processes_stop(&pids[i], 1, 30 * USEC_PER_SEC);
}
