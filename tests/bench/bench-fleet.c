/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A host with many VMs (`machine: none`): what the supervisors cost together, and how
 * fast one client lists them and reads every State. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static char *fleet_name(unsigned i) {
        return strf("fleet%03u", i);
}

/* ListNames, then State of every org.vmsup.VM.fleet* name, one call after the other
 * (pipelined: all Gets sent at once, then the answers collected). Returns the number of
 * VMs seen running, or -errno. */
typedef struct Pipe {
        unsigned pending, ok, bad;
} Pipe;

static int on_pipe_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pipe *p = userdata;
        const char *s;

        p->pending--;
        if (!sd_bus_message_is_method_error(m, NULL) && sd_bus_message_read(m, "v", "s", &s) >= 0 &&
            streq(s, "running"))
                p->ok++;
        else
                p->bad++;
        return 0;
}

static int list_and_read(sd_bus *bus, bool pipelined) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **names = NULL;
        Pipe p = {};
        int n = 0, r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "ListNames", &error, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(reply, &names);
        if (r < 0)
                return r;
        for (char **nm = names; nm && *nm; nm++) {
                if (!startswith(*nm, BUS_VM_PREFIX "fleet"))
                        continue;
                if (pipelined) {
                        r = sd_bus_call_method_async(bus, NULL, *nm, BUS_VM_PATH, "org.freedesktop.DBus.Properties",
                                                     "Get", on_pipe_reply, &p, "ss", "org.vmsup.VM1", "State");
                        if (r < 0)
                                return r;
                        p.pending++;
                } else {
                        r = bus_get_state(bus, *nm, "running");
                        if (r < 0)
                                return r;
                        n++;
                }
        }
        if (!pipelined)
                return n;
        while (p.pending > 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r == 0 && (r = sd_bus_wait(bus, 30 * USEC_PER_SEC)) < 0)
                        return r;
        }
        return p.bad > 0 ? -EBADMSG : (int) p.ok;
}

static int list_rounds(bool fresh, bool pipelined, unsigned rounds, Samples *s) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *warm = NULL;
        int r;

        if (!fresh) {
                r = bus_open(&warm);
                if (r < 0)
                        return r;
                r = list_and_read(warm, pipelined); /* credentials cached everywhere */
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < rounds; i++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *cold = NULL;
                sd_bus *bus = warm;
                if (fresh) {
                        /* A new caller, as a command-line tool is: connected before the clock
                         * starts; every supervisor looks up its credentials on first contact. */
                        r = bus_open(&cold);
                        if (r < 0)
                                return r;
                        bus = cold;
                }
                uint64_t t0 = now_ns();
                r = list_and_read(bus, pipelined);
                uint64_t t1 = now_ns();
                if (r < 0)
                        return r;
                if ((unsigned) r != cfg.fleet)
                        return -ESRCH;
                samples_add(s, t1 - t0);
        }
        return 0;
}

void bench_fleet(void) {
        _cleanup_free_ char *f_mem = strf("total supervisor PSS, %u VMs (`machine: none`)", cfg.fleet),
                            *f_list = strf("list %u bus names + read each `State` (new client, sequential)", cfg.fleet),
                            *f_list_pipe = strf("… new client, %u Gets pipelined", cfg.fleet);
        static const char *f_list_warm = "… the same, client already known to every supervisor";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ pid_t *pids = calloc(cfg.fleet, sizeof(pid_t));
        Samples s = {};
        uint64_t pss = 0, rss = 0, qpss = 0, qrss = 0, t0;
        unsigned started = 0;
        int r;

        /* The goals are for 100 VMs; a smaller fleet (quick runs) gets its share. */
        _cleanup_free_ char *g_mem = strf("≤ %u MiB", 2 * cfg.fleet), *g_list = strf("≤ %u ms", 2 * cfg.fleet);
        if (!pids)
                return;
        t0 = now_ns();
        for (unsigned i = 0; i < cfg.fleet; i++) {
                _cleanup_free_ char *name = fleet_name(i);
                pids[i] = vmsupd_spawn(name);
                if (pids[i] < 0) {
                        row_error("fleet_pss", f_mem, g_mem, "cannot start vmsupd %s: %s", name,
                                  strerror(-pids[i]));
                        goto finish;
                }
                started++;
        }
        r = vmsupd_wait_ready(pids, cfg.fleet, 300 * USEC_PER_SEC);
        if (r < 0) {
                row_error("fleet_pss", f_mem, g_mem, "the supervisors did not all come up: %s", strerror(-r));
                goto finish;
        }
        double up_s = (double) (now_ns() - t0) / 1e9;
        sleep(2); /* settle: nothing is talking to them */

        r = bus_open(&bus);
        if (r < 0) {
                row_error("fleet_pss", f_mem, g_mem, "bus: %s", strerror(-r));
                goto finish;
        }
        for (unsigned i = 0; i < cfg.fleet; i++) {
                uint64_t p, q;
                uint32_t qpid = 0;
                _cleanup_free_ char *name = fleet_name(i), *dest = vm_dest(name);
                r = proc_smaps_rollup(pids[i], &p, &q);
                if (r < 0) {
                        row_error("fleet_pss", f_mem, g_mem, "smaps_rollup: %s", strerror(-r));
                        goto finish;
                }
                pss += p;
                rss += q;
                if (bus_get_u32(bus, dest, "Pid", &qpid) >= 0 && qpid > 0 &&
                    proc_smaps_rollup((pid_t) qpid, &p, &q) >= 0) {
                        qpss += p;
                        qrss += q;
                }
        }
        /* The Gets above made this client known everywhere: leave before the listing runs. */
        bus = sd_bus_flush_close_unref(bus);
        {
                json_t *d = json_pack("{s:i,s:I,s:I,s:I,s:I,s:f}", "vms", (int) cfg.fleet, "pss_kib", (json_int_t) pss,
                                      "rss_kib", (json_int_t) rss, "qemu_pss_kib", (json_int_t) qpss, "qemu_rss_kib",
                                      (json_int_t) qrss, "start_all_seconds", up_s);
                _cleanup_free_ char *a = strf("PSS %.1f MiB (%.0f KiB each), RSS %.1f MiB", pss / 1024.0,
                                              (double) pss / cfg.fleet, rss / 1024.0),
                                    *b = strf("(their QEMUs: PSS %.0f MiB, RSS %.0f MiB)", qpss / 1024.0,
                                              qrss / 1024.0),
                                    *c = strf("all %u ready in %.1f s", cfg.fleet, up_s);
                row_add("fleet_pss", f_mem, a, b, c, g_mem,
                        pss <= 2048 * (uint64_t) cfg.fleet ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
        }

        struct {
                const char *id, *figure, *goal;
                bool fresh, pipelined;
        } variants[] = {
                { "fleet_list", f_list, g_list, true, false },
                { "fleet_list_warm", f_list_warm, NULL, false, false },
                { "fleet_list_pipelined", f_list_pipe, NULL, true, true },
        };
        for (size_t v = 0; v < ELEMENTSOF(variants); v++) {
                r = list_rounds(variants[v].fresh, variants[v].pipelined, cfg.fleet_rounds, &s);
                if (r < 0)
                        row_error(variants[v].id, variants[v].figure, variants[v].goal ?: "—", "%s", strerror(-r));
                else {
                        double p50 = samples_pct(&s, 50) / 1e6;
                        json_t *d = json_pack("{s:s,s:o}", "unit", "ms", "vmsupd", samples_json(&s, 1e6));
                        _cleanup_free_ char *a = strf("p50 %.1f ms, p99 %.1f ms", p50, samples_pct(&s, 99) / 1e6),
                                            *c = strf("%.0f µs per VM", p50 * 1e3 / cfg.fleet);
                        row_add(variants[v].id, variants[v].figure, a, NULL, c, variants[v].goal,
                                !variants[v].goal             ? VERDICT_INFO
                                : p50 <= 2.0 * cfg.fleet ? VERDICT_MET
                                                              : VERDICT_MISSED,
                                d);
                        json_decref(d);
                }
                samples_free(&s);
        }

        /* What a short-lived client (a busctl call) costs the host beyond its own call: every
         * connection that comes and goes is announced (NameOwnerChanged) to every supervisor
         * that watches for departing callers. */
        {
                unsigned cycles = cfg.quick ? 50 : 200;
                uint64_t sup0 = 0, sup1 = 0, bus0 = 0, bus1 = 0, v;
                for (unsigned i = 0; i < cfg.fleet; i++)
                        if (proc_cpu_ns(pids[i], &v) >= 0)
                                sup0 += v;
                if (cfg.dbus_pid > 0)
                        (void) proc_cpu_ns(cfg.dbus_pid, &bus0);
                uint64_t t0c = now_ns();
                for (unsigned i = 0; i < cycles; i++) {
                        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *b = NULL;
                        r = bus_open(&b);
                        if (r < 0)
                                break;
                }
                usleep(200 * 1000); /* the last departures reach everyone */
                double wall_ms = (double) (now_ns() - t0c) / 1e6;
                for (unsigned i = 0; i < cfg.fleet; i++)
                        if (proc_cpu_ns(pids[i], &v) >= 0)
                                sup1 += v;
                if (cfg.dbus_pid > 0)
                        (void) proc_cpu_ns(cfg.dbus_pid, &bus1);
                if (r < 0)
                        row_error("fleet_churn", "client connect + disconnect", NULL, "%s", strerror(-r));
                else {
                        double sup_us = (double) (sup1 - sup0) / 1e3 / cycles, bus_us = (double) (bus1 - bus0) / 1e3 / cycles;
                        _cleanup_free_ char *fig = strf("CPU per client connect + disconnect, %u supervisors running",
                                                        cfg.fleet),
                                            *a = strf("all supervisors %.0f µs, dbus-daemon %.0f µs", sup_us, bus_us),
                                            *c = strf("%u cycles in %.0f ms", cycles, wall_ms);
                        json_t *d = json_pack("{s:i,s:f,s:f}", "cycles", (int) cycles, "supervisors_cpu_us", sup_us,
                                              "dbus_daemon_cpu_us", bus_us);
                        row_add("fleet_churn", fig, a, NULL, c, NULL, VERDICT_INFO, d);
                        json_decref(d);
                }
        }

finish:
        processes_stop(pids, started, 20 * USEC_PER_SEC);
}
