/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Many starts at once, many times over (`make stress`): every round starts cfg.fleet
 * supervisors together (each autostarts its `machine: none` VM, as after a host reboot),
 * then stops and starts every VM again over the bus, all calls in flight at once, and
 * stops everything. A start that fails is counted, named, and its supervisor's log (with
 * the flight recorder's account) is kept in logs/NAME.log. */

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct Call {
        const char *name;
        char *error; /* NULL: success */
        bool done;
} Call;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Call *c = userdata;

        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(m);
                c->error = strf("%s: %s", e && e->name ? e->name : "error", e && e->message ? e->message : "");
        }
        c->done = true;
        return 0;
}

/* Calls VM1.method (or reads State when method is NULL, checking it is "running") on every VM
 * at once and waits for all answers. Returns the number of failures, each named in calls[]. */
static unsigned call_all(sd_bus *bus, char **names, unsigned n, const char *method, Call *calls, int *ret_r) {
        unsigned failed = 0;
        int r = 0;

        for (unsigned i = 0; i < n; i++) {
                _cleanup_free_ char *dest = vm_dest(names[i]);
                calls[i] = (Call) { .name = names[i] };
                if (method)
                        r = sd_bus_call_method_async(bus, NULL, dest, BUS_VM_PATH, "org.vmsup.VM1", method, on_reply,
                                                     &calls[i], NULL);
                else
                        r = bus_get_state(bus, dest, "running");
                if (r < 0) {
                        calls[i].error = strf("%s: %s", method ?: "State", r == -EBADMSG ? "not running" : strerror(-r));
                        calls[i].done = true;
                        r = 0;
                } else if (!method)
                        calls[i].done = true;
        }
        uint64_t deadline = now_ns() + 120 * UINT64_C(1000000000);
        for (;;) {
                unsigned left = 0;
                for (unsigned i = 0; i < n; i++)
                        left += !calls[i].done;
                if (left == 0 || now_ns() >= deadline)
                        break;
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r == 0 && (r = sd_bus_wait(bus, USEC_PER_SEC)) < 0)
                        break;
        }
        for (unsigned i = 0; i < n; i++) {
                if (!calls[i].done)
                        calls[i].error = strf("%s: no answer in 120 s", method ?: "State");
                if (calls[i].error)
                        failed++;
        }
        *ret_r = r < 0 ? r : 0;
        return failed;
}

static void calls_free(Call *calls, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                calls[i].error = mfree(calls[i].error);
}

static unsigned report_failures(unsigned round, const char *what, Call *calls, unsigned n) {
        unsigned f = 0;
        for (unsigned i = 0; i < n; i++)
                if (calls[i].error) {
                        fprintf(stderr, "vmsup-bench: stress round %u: %s %s failed: %s (its log: logs/%s.log)\n",
                                round + 1, what, calls[i].name, calls[i].error, calls[i].name);
                        f++;
                }
        return f;
}

void bench_stress(void) {
        _cleanup_free_ char *figure = strf("%u rounds: %u supervisors autostart together, then Stop + Start of all "
                                           "%u over the bus at once",
                                           cfg.stress_rounds, cfg.fleet, cfg.fleet);
        _cleanup_free_ pid_t *pids = calloc(cfg.fleet, sizeof(pid_t));
        _cleanup_free_ Call *calls = calloc(cfg.fleet, sizeof(Call));
        _cleanup_strv_free_ char **names = NULL;
        unsigned failures = 0, starts = 0, rounds_done = 0;
        Samples up = {}, restart = {};
        int r = 0;

        if (!pids || !calls)
                return;
        for (unsigned i = 0; i < cfg.fleet; i++)
                if (strv_extendf(&names, "fleet%03u", i) < 0)
                        return;

        for (unsigned round = 0; round < cfg.stress_rounds; round++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
                unsigned started = 0, f = 0;
                uint64_t t0 = now_ns();

                for (unsigned i = 0; i < cfg.fleet; i++) {
                        pids[i] = vmsupd_spawn(names[i]);
                        if (pids[i] < 0) {
                                r = pids[i];
                                break;
                        }
                        started++;
                }
                if (r >= 0)
                        r = vmsupd_wait_ready(pids, cfg.fleet, 300 * USEC_PER_SEC);
                if (r < 0) {
                        processes_stop(pids, started, 20 * USEC_PER_SEC);
                        row_error("stress", figure, "0 failures", "round %u: the supervisors did not all come up: %s",
                                  round + 1, strerror(-r));
                        goto finish;
                }
                samples_add(&up, now_ns() - t0);

                r = bus_open(&bus);
                if (r >= 0) {
                        /* Autostart: READY=1 came after the start settled; did it succeed? */
                        if (call_all(bus, names, cfg.fleet, NULL, calls, &r) > 0)
                                f += report_failures(round, "autostart of", calls, cfg.fleet);
                        calls_free(calls, cfg.fleet);
                }
                if (r >= 0) {
                        (void) call_all(bus, names, cfg.fleet, "Stop", calls, &r);
                        /* A VM whose autostart failed has nothing to stop: counted above already. */
                        calls_free(calls, cfg.fleet);
                }
                if (r >= 0) {
                        uint64_t t1 = now_ns();
                        if (call_all(bus, names, cfg.fleet, "Start", calls, &r) > 0)
                                f += report_failures(round, "Start of", calls, cfg.fleet);
                        samples_add(&restart, now_ns() - t1);
                        calls_free(calls, cfg.fleet);
                }
                if (r >= 0) {
                        (void) call_all(bus, names, cfg.fleet, "Stop", calls, &r);
                        calls_free(calls, cfg.fleet);
                }
                processes_stop(pids, started, 20 * USEC_PER_SEC);
                if (r < 0) {
                        row_error("stress", figure, "0 failures", "round %u: bus: %s", round + 1, strerror(-r));
                        goto finish;
                }
                starts += 2 * cfg.fleet;
                failures += f;
                rounds_done++;
                printf("vmsup-bench: stress round %u/%u: %u failed starts (all %u up in %.1f s, restarted in %.1f s, "
                       "round %.1f s)\n",
                       round + 1, cfg.stress_rounds, f, cfg.fleet, (double) up.v[up.n - 1] / 1e9,
                       (double) restart.v[restart.n - 1] / 1e9, (double) (now_ns() - t0) / 1e9);
        }

        {
                json_t *d = json_pack("{s:i,s:i,s:i,s:i,s:o,s:o}", "rounds", (int) rounds_done, "vms", (int) cfg.fleet,
                                      "starts", (int) starts, "failures", (int) failures, "all_up_seconds",
                                      samples_json(&up, 1e9), "restart_all_seconds", samples_json(&restart, 1e9));
                _cleanup_free_ char *a = strf("%u failed of %u starts", failures, starts),
                                    *c = strf("all up p50 %.1f s (max %.1f), restart all p50 %.1f s (max %.1f)",
                                              samples_pct(&up, 50) / 1e9, samples_pct(&up, 100) / 1e9,
                                              samples_pct(&restart, 50) / 1e9, samples_pct(&restart, 100) / 1e9);
                if (failures > 0)
                        row_error("stress", figure, "0 failures", "%u failed of %u starts in %u rounds (see above)",
                                  failures, starts, rounds_done);
                else
                        row_add("stress", figure, a, NULL, c, "0 failures", VERDICT_MET, d);
                json_decref(d);
        }
finish:
        samples_free(&up);
        samples_free(&restart);
}
