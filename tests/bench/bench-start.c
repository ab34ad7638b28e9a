/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Start → returns, against QEMU started directly with the same argv and brought to the
 * same point: QMP greeting read, qmp_capabilities and cont answered. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int log_step(const char *what, int r) {
        fprintf(stderr, "vmsup-bench: %s: %s\n", what, strerror(-r));
        return r;
}

static int sup_start_once(sd_bus *bus, const char *dest, uint64_t *ret_ns) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL, error2 = SD_BUS_ERROR_NULL;
        uint32_t pid = 0;
        uint64_t t0, t1;
        int r;

        t0 = now_ns();
        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.vmsup.VM1", "Start", &error, NULL, NULL);
        t1 = now_ns();
        if (r < 0) {
                fprintf(stderr, "vmsup-bench: Start: %s\n", error.message ?: strerror(-r));
                return r;
        }
        /* Checked outside the clock: it runs, with a QEMU behind it. */
        r = bus_get_state(bus, dest, "running");
        if (r < 0)
                return log_step("State after Start", r);
        r = bus_get_u32(bus, dest, "Pid", &pid);
        if (r >= 0 && pid == 0)
                r = -EBADMSG;
        if (r < 0)
                return log_step("Pid after Start", r);
        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.vmsup.VM1", "Stop", &error2, NULL, NULL);
        if (r < 0)
                return log_step("Stop", r);
        r = bus_get_state(bus, dest, "stopped");
        if (r < 0)
                return log_step("State after Stop", r);
        *ret_ns = t1 - t0;
        return 0;
}

static int raw_start_once(RawQemu *q, uint64_t *ret_ns) {
        json_auto_t *ret = NULL;
        uint64_t t0, t1;
        int r;

        t0 = now_ns();
        r = raw_qemu_launch(q);
        t1 = now_ns();
        if (r >= 0) {
                r = raw_qmp_command(&q->qmp, "query-status", NULL, &ret);
                json_t *st = json_object_get(ret, "status");
                if (r >= 0 && !(json_is_string(st) && streq(json_string_value(st), "running")))
                        r = -EBADMSG;
        }
        raw_qemu_stop(q);
        if (r < 0)
                return r;
        *ret_ns = t1 - t0;
        return 0;
}

void bench_start(void) {
        static const char *figure = "`Start` → returns (`machine: none`)";
        static const char *goal = "overhead ≤ 10 ms";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *dest = vm_dest("bstart");
        Samples s_sup = {}, s_raw = {};
        RawQemu raw = { .pid = -1, .qga_fd = -1, .qmp = { .in = { .fd = -1 } } };
        pid_t pid;
        int r;

        pid = vmsupd_spawn("bstart");
        r = pid < 0 ? pid : vmsupd_wait_ready(&pid, 1, 60 * USEC_PER_SEC);
        if (r >= 0)
                r = bus_open(&bus);
        if (r >= 0)
                r = bus_get_state(bus, dest, "stopped");
        if (r < 0) {
                row_error("start", figure, goal, "vmsupd did not come up: %s", strerror(-r));
                goto finish_sup;
        }
        r = raw_qemu_prepare("rawstart", &raw);
        if (r < 0) {
                row_error("start", figure, goal, "cannot load the raw definition: %s", strerror(-r));
                goto finish;
        }
        /* One of each untimed: page cache, dynamic loader caches. */
        uint64_t t;
        if ((r = sup_start_once(bus, dest, &t)) < 0 || (r = raw_start_once(&raw, &t)) < 0) {
                row_error("start", figure, goal, "warm-up failed: %s", strerror(-r));
                goto finish;
        }
        for (unsigned i = 0; i < cfg.starts; i++) {
                for (unsigned side = 0; side < 2; side++) {
                        bool sup = (side == 0) == (i % 2 == 0);
                        r = sup ? sup_start_once(bus, dest, &t) : raw_start_once(&raw, &t);
                        if (r < 0) {
                                row_error("start", figure, goal, "%s start %u failed: %s", sup ? "vmsupd" : "raw", i,
                                          strerror(-r));
                                goto finish;
                        }
                        samples_add(sup ? &s_sup : &s_raw, t);
                }
        }
        {
                double over = (samples_pct(&s_sup, 50) - samples_pct(&s_raw, 50)) / 1e6;
                json_t *d = json_pack("{s:s,s:o,s:o,s:f,s:s}", "unit", "ms", "vmsupd", samples_json(&s_sup, 1e6), "raw",
                                      samples_json(&s_raw, 1e6), "overhead_p50_ms", over, "raw_is",
                                      "fork+exec of the same argv, QMP greeting, qmp_capabilities, cont answered");
                _cleanup_free_ char *a = strf("p50 %.1f ms, p99 %.1f ms", samples_pct(&s_sup, 50) / 1e6,
                                              samples_pct(&s_sup, 99) / 1e6),
                                    *b = strf("exec → greeting, qmp_capabilities, cont: p50 %.1f ms, p99 %.1f ms",
                                              samples_pct(&s_raw, 50) / 1e6, samples_pct(&s_raw, 99) / 1e6),
                                    *c = strf("%+.1f ms", over);
                row_add("start", figure, a, b, c, goal, over <= 10.0 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
        }
finish:
        raw_qemu_free(&raw);
finish_sup:
        processes_stop(&pid, 1, 10 * USEC_PER_SEC);
        samples_free(&s_sup);
        samples_free(&s_raw);
}
