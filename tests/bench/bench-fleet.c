/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A host with many VMs (`machine: none`): what the supervisors cost together, and how
 * fast one client lists them and reads every State. */

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static char *fleet_name(unsigned i) {
        return strf("fleet%03u", i);
}

#define FLEET_PIPELINE 100U

/* ListNames, then State of every org.vmsup.VM.fleet* name, one call after the other
 * (pipelined: up to FLEET_PIPELINE Gets in flight, the answers collected as they come). Returns the number of
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
                        /* dbus-daemon answers a client's calls beyond its max_replies_per_connection
                         * (128 by default) with LimitsExceeded: at most FLEET_PIPELINE in flight. */
                        while (p.pending >= FLEET_PIPELINE) {
                                r = sd_bus_process(bus, NULL);
                                if (r < 0)
                                        return r;
                                if (r == 0 && (r = sd_bus_wait(bus, 30 * USEC_PER_SEC)) < 0)
                                        return r;
                        }
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

/* The same sweep on the direct sockets: the names from the runtime directory (DIR/run/
 * fleet*.bus), a new connection to each, every Get sent at once, the answers collected.
 * Returns the number of VMs seen running, or -errno. */
static int on_direct_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Pipe *p = userdata;

        (void) on_pipe_reply(m, userdata, ret_error);
        if (p->pending == 0)
                (void) sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
        return 0;
}

static int direct_sweep(void) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_free_ char *run = strf("%s/run", cfg.dir);
        _cleanup_free_ sd_bus **buses = calloc(cfg.fleet + 1, sizeof(sd_bus *));
        _cleanup_(closedirp) DIR *d = NULL;
        size_t n = 0;
        Pipe p = {};
        struct dirent *de;
        int r = 0;

        if (!run || !buses)
                return -ENOMEM;
        r = sd_event_new(&event);
        if (r < 0)
                return r;
        d = opendir(run);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *name = NULL;
                size_t len = strlen(de->d_name);

                if (!startswith(de->d_name, "fleet") || len < 5 || !streq(de->d_name + len - 4, ".bus"))
                        continue;
                if (n >= cfg.fleet) {
                        r = -E2BIG;
                        break;
                }
                name = strndup(de->d_name, len - 4);
                if (!name) {
                        r = -ENOMEM;
                        break;
                }
                r = direct_open(name, &buses[n]);
                if (r < 0)
                        break;
                n++;
                r = sd_bus_attach_event(buses[n - 1], event, 0);
                if (r >= 0)
                        r = sd_bus_call_method_async(buses[n - 1], NULL, NULL, BUS_VM_PATH,
                                                     "org.freedesktop.DBus.Properties", "Get", on_direct_reply, &p,
                                                     "ss", "org.vmsup.VM1", "State");
                if (r < 0)
                        break;
                p.pending++;
        }
        if (r >= 0 && p.pending > 0)
                r = sd_event_loop(event);
        for (size_t i = 0; i < n; i++)
                sd_bus_flush_close_unref(buses[i]);
        if (r < 0)
                return r;
        return p.bad > 0 || p.pending > 0 ? -EBADMSG : (int) p.ok;
}

/* Context switches of every thread of pid so far: each is a wake-up from sleep (voluntary)
 * or a preemption. */
static int proc_switches(pid_t pid, uint64_t *ret) {
        _cleanup_free_ char *dir = strf("/proc/%d/task", (int) pid);
        _cleanup_(closedirp) DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;
        uint64_t total = 0;

        if (!d)
                return -errno ?: -ENOMEM;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                _cleanup_(fclosep) FILE *f = NULL;
                char line[256];

                if (de->d_name[0] == '.')
                        continue;
                path = strf("%s/%s/status", dir, de->d_name);
                f = path ? fopen(path, "re") : NULL;
                if (!f)
                        continue;
                while (fgets(line, sizeof line, f)) {
                        unsigned long long v;
                        if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
                            sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
                                total += v;
                }
        }
        *ret = total;
        return 0;
}

static void idle_row(const pid_t *pids) {
        _cleanup_free_ uint64_t *before = calloc(cfg.fleet, sizeof(uint64_t));
        _cleanup_free_ char *fig = strf("wake-ups per second per idle supervisor (context switches of all its "
                                        "threads over %u s, %u supervisors, no watchdog)",
                                        cfg.quick ? 3U : 10U, cfg.fleet);
        unsigned secs = cfg.quick ? 3 : 10;
        uint64_t total = 0, max = 0;
        unsigned busy = 0;

        if (!before || !fig)
                return;
        for (unsigned i = 0; i < cfg.fleet; i++)
                if (proc_switches(pids[i], &before[i]) < 0) {
                        row_error("fleet_idle", fig, "0", "cannot read the context switches of %d", (int) pids[i]);
                        return;
                }
        sleep(secs);
        for (unsigned i = 0; i < cfg.fleet; i++) {
                uint64_t v = 0;
                if (proc_switches(pids[i], &v) < 0) {
                        row_error("fleet_idle", fig, "0", "cannot read the context switches of %d", (int) pids[i]);
                        return;
                }
                v -= before[i];
                total += v;
                if (v > max)
                        max = v;
                if (v > 0)
                        busy++;
        }
        double mean = (double) total / cfg.fleet / secs;
        json_t *d = json_pack("{s:i,s:i,s:f,s:f,s:i}", "vms", (int) cfg.fleet, "seconds", (int) secs,
                              "wakeups_per_sec_mean", mean, "wakeups_per_sec_max", (double) max / secs,
                              "supervisors_woken", (int) busy);
        _cleanup_free_ char *a = strf("%.2f/s on average, %.1f/s at most", mean, (double) max / secs),
                            *c = strf("%u of %u supervisors woke at all", busy, cfg.fleet);
        row_add("fleet_idle", fig, a, NULL, c, "0 beyond the watchdog ping", total == 0 ? VERDICT_MET : VERDICT_MISSED,
                d);
        json_decref(d);
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

        /* The goals are for 500 VMs (the sweep's for 100 with a new client reading one VM after
         * the other); a smaller fleet gets its share. */
        _cleanup_free_ char *g_mem = strf("≤ 256 KiB each (%u MiB)", cfg.fleet / 4), *g_list = strf("≤ %u ms", 2 * cfg.fleet),
                            *g_sweep = strf("≤ %.0f ms", cfg.fleet / 2.0),
                            *f_direct = strf("… the same on the %u direct sockets (names from the runtime directory, "
                                             "a new connection each, Gets pipelined)", cfg.fleet),
                            *f_ready = strf("time to have all %u supervisors ready (spawned at once)", cfg.fleet);
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
                                    *c = strf("%.0f KiB each", (double) pss / cfg.fleet),
                                    *e = strf("%.1f s (%.1f ms per VM)", up_s, up_s * 1e3 / cfg.fleet);
                row_add("fleet_pss", f_mem, a, b, c, g_mem,
                        pss <= 256 * (uint64_t) cfg.fleet ? VERDICT_MET : VERDICT_MISSED, d);
                row_add("fleet_ready", f_ready, e, NULL, NULL, NULL, VERDICT_INFO, NULL);
                json_decref(d);
        }
        sleep(1); /* the departure of the client above reached every supervisor */
        idle_row(pids);

        struct {
                const char *id, *figure, *goal;
                bool fresh, pipelined;
        } variants[] = {
                { "fleet_list", f_list, g_list, true, false },
                { "fleet_list_warm", f_list_warm, NULL, false, false },
                { "fleet_list_pipelined", f_list_pipe, g_sweep, true, true },
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
                        double limit = variants[v].pipelined ? cfg.fleet / 2.0 : 2.0 * cfg.fleet;
                        row_add(variants[v].id, variants[v].figure, a, NULL, c, variants[v].goal,
                                !variants[v].goal ? VERDICT_INFO : p50 <= limit ? VERDICT_MET : VERDICT_MISSED, d);
                        json_decref(d);
                }
                samples_free(&s);
        }

        /* Where a direct sweep's time goes: the harness's CPU (500 connections made, handshakes,
         * calls) and the supervisors' (each accepts, authenticates and answers). */
        uint64_t cpu_self = 0, cpu_sups = 0;
        for (unsigned i = 0; i < cfg.fleet_rounds; i++) {
                uint64_t self0 = 0, self1 = 0, sups0 = 0, sups1 = 0, v;
                for (unsigned k = 0; k < cfg.fleet; k++)
                        if (proc_cpu_ns(pids[k], &v) >= 0)
                                sups0 += v;
                (void) proc_cpu_ns(getpid(), &self0);
                uint64_t t0d = now_ns();
                r = direct_sweep();
                uint64_t t1d = now_ns();
                (void) proc_cpu_ns(getpid(), &self1);
                for (unsigned k = 0; k < cfg.fleet; k++)
                        if (proc_cpu_ns(pids[k], &v) >= 0)
                                sups1 += v;
                if (r >= 0 && (unsigned) r != cfg.fleet)
                        r = -ESRCH;
                if (r < 0)
                        break;
                samples_add(&s, t1d - t0d);
                cpu_self += self1 - self0;
                cpu_sups += sups1 - sups0;
        }
        if (r < 0)
                row_error("fleet_direct", f_direct, g_sweep, "%s", strerror(-r));
        else {
                double p50 = samples_pct(&s, 50) / 1e6;
                json_t *d = json_pack("{s:s,s:o,s:f,s:f}", "unit", "ms", "vmsupd", samples_json(&s, 1e6),
                                      "harness_cpu_ms_per_sweep", cpu_self / 1e6 / cfg.fleet_rounds,
                                      "supervisors_cpu_ms_per_sweep", cpu_sups / 1e6 / cfg.fleet_rounds);
                _cleanup_free_ char *a = strf("p50 %.1f ms, p99 %.1f ms", p50, samples_pct(&s, 99) / 1e6),
                                    *c = strf("%.0f µs per VM; CPU per sweep: the client %.0f ms, the supervisors "
                                              "%.0f ms (%.0f µs each)",
                                              p50 * 1e3 / cfg.fleet, cpu_self / 1e6 / cfg.fleet_rounds,
                                              cpu_sups / 1e6 / cfg.fleet_rounds,
                                              cpu_sups / 1e3 / cfg.fleet_rounds / cfg.fleet);
                row_add("fleet_direct", f_direct, a, NULL, c, g_sweep,
                        p50 <= cfg.fleet / 2.0 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
        }
        samples_free(&s);

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
