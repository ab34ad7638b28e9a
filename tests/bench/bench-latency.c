/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Round trips through the supervisor against the same questions asked on QEMU's own
 * QMP socket, the call rate of 16 concurrent clients, and the idle supervisor's memory. */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <systemd/sd-event.h>

#include "bench.h"

typedef struct Ctx {
        sd_bus *bus;
        sd_bus *direct; /* the same supervisor on its direct socket */
        const char *dest;
        RawQemu *raw;
        pid_t sup_pid, sup_qemu_pid;
        char err[256]; /* the last bus error's text */
} Ctx;

static int bus_failed(Ctx *c, const sd_bus_error *error, int r) {
        snprintf(c->err, sizeof c->err, "%s", error->message ?: strerror(-r));
        return r;
}

/* CPU time spent by each process in a pair run, per timed call of its side. Only one
 * side's calls are ever in flight, and everything here is otherwise idle. */
typedef struct CpuUse {
        uint64_t sup[2], bus[2], sup_qemu[2], raw_qemu[2], self[2];
} CpuUse;

static void cpu_sample(Ctx *c, CpuUse *u, int i) {
        (void) proc_cpu_ns(c->sup_pid, &u->sup[i]);
        if (cfg.dbus_pid > 0)
                (void) proc_cpu_ns(cfg.dbus_pid, &u->bus[i]);
        (void) proc_cpu_ns(c->sup_qemu_pid, &u->sup_qemu[i]);
        (void) proc_cpu_ns(c->raw->pid, &u->raw_qemu[i]);
        (void) proc_cpu_ns(getpid(), &u->self[i]);
}

/* µs per call; the warm-up calls count too. */
static json_t *cpu_json(CpuUse *u, unsigned calls) {
        double d = 1e3 * calls;
        return json_pack("{s:f,s:f,s:f,s:f,s:f}", "vmsupd", (u->sup[1] - u->sup[0]) / d, "dbus_daemon",
                         (u->bus[1] - u->bus[0]) / d, "vmsupd_qemu", (u->sup_qemu[1] - u->sup_qemu[0]) / d,
                         "raw_qemu", (u->raw_qemu[1] - u->raw_qemu[0]) / d, "harness_both_sides",
                         (u->self[1] - u->self[0]) / d);
}

static char *cpu_note(const char *what, CpuUse *u, unsigned calls) {
        double d = 1e3 * calls;
        return strf("CPU per call (%s): vmsupd %.1f µs, dbus-daemon %.1f µs, its QEMU %.1f µs; raw side: QEMU %.1f µs.",
                    what, (u->sup[1] - u->sup[0]) / d, (u->bus[1] - u->bus[0]) / d,
                    (u->sup_qemu[1] - u->sup_qemu[0]) / d, (u->raw_qemu[1] - u->raw_qemu[0]) / d);
}

typedef int (*op_fn)(Ctx *c);

/* ---- the operations (each checks its answer) ---- */

static int op_bus_state(Ctx *c) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s;
        int r;

        r = sd_bus_call_method(c->bus, c->dest, BUS_VM_PATH, "org.freedesktop.DBus.Properties", "Get", &error, &reply,
                               "ss", "org.vmsup.VM1", "State");
        if (r < 0)
                return bus_failed(c, &error, r);
        r = sd_bus_message_read(reply, "v", "s", &s);
        if (r < 0)
                return r;
        return streq(s, "running") ? 0 : -EBADMSG;
}

static int op_direct_state(Ctx *c) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s;
        int r;

        r = sd_bus_call_method(c->direct, NULL, BUS_VM_PATH, "org.freedesktop.DBus.Properties", "Get", &error, &reply,
                               "ss", "org.vmsup.VM1", "State");
        if (r < 0)
                return bus_failed(c, &error, r);
        r = sd_bus_message_read(reply, "v", "s", &s);
        if (r < 0)
                return r;
        return streq(s, "running") ? 0 : -EBADMSG;
}

static int op_raw_query_status(Ctx *c) {
        json_auto_t *ret = NULL;
        int r = raw_qmp_command(&c->raw->qmp, "query-status", NULL, &ret);
        if (r < 0)
                return r;
        json_t *st = json_object_get(ret, "status");
        return json_is_string(st) && streq(json_string_value(st), "running") ? 0 : -EBADMSG;
}

/* HumanCommand("info status") on bus (dest NULL on a direct connection). */
static int hmp_on(Ctx *c, sd_bus *bus, const char *dest) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *out;
        int r;

        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.vmsup.Monitor1", "HumanCommand", &error, &reply,
                               "s", "info status");
        if (r < 0)
                return bus_failed(c, &error, r);
        r = sd_bus_message_read(reply, "s", &out);
        if (r < 0)
                return r;
        return strstr(out, "VM status: running") ? 0 : -EBADMSG;
}

static int op_bus_hmp(Ctx *c) {
        return hmp_on(c, c->bus, c->dest);
}

static int op_direct_hmp(Ctx *c) {
        return hmp_on(c, c->direct, NULL);
}

static int op_raw_hmp(Ctx *c) {
        json_auto_t *args = json_pack("{s:s}", "command-line", "info status"), *ret = NULL;
        int r;

        if (!args)
                return -ENOMEM;
        r = raw_qmp_command(&c->raw->qmp, "human-monitor-command", args, &ret);
        if (r < 0)
                return r;
        return json_is_string(ret) && strstr(json_string_value(ret), "VM status: running") ? 0 : -EBADMSG;
}

static int get_status_on(Ctx *c, sd_bus *bus, const char *dest) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        bool state_ok = false, qmp_ok = false;
        int r;

        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.vmsup.VM1", "GetStatus", &error, &reply, NULL);
        if (r < 0)
                return bus_failed(c, &error, r);
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key, *s;
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "state") || streq(key, "qmp-status")) {
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r < 0)
                                return r;
                        if (streq(s, "running")) {
                                if (key[0] == 's')
                                        state_ok = true;
                                else
                                        qmp_ok = true;
                        }
                } else if ((r = sd_bus_message_skip(reply, "v")) < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return state_ok && qmp_ok ? 0 : -EBADMSG;
}

static int op_bus_get_status(Ctx *c) {
        return get_status_on(c, c->bus, c->dest);
}

static int op_direct_get_status(Ctx *c) {
        return get_status_on(c, c->direct, NULL);
}

/* ---- interleaved runner ---- */

/* Runs a and b alternately in batches (the first side alternates too), after a warm-up of
 * each; every call's answer is checked. */
static int run_pair(Ctx *c, op_fn a, op_fn b, Samples *sa, Samples *sb, CpuUse *u) {
        unsigned done = 0, round = 0;
        int r;

        cpu_sample(c, u, 0);
        for (unsigned i = 0; i < cfg.warmup; i++)
                if ((r = a(c)) < 0 || (r = b(c)) < 0)
                        return r;
        while (done < cfg.iterations) {
                unsigned k = cfg.batch;
                if (k > cfg.iterations - done)
                        k = cfg.iterations - done;
                for (unsigned side = 0; side < 2; side++) {
                        bool first_a = (round % 2 == 0) == (side == 0);
                        op_fn f = first_a ? a : b;
                        Samples *s = first_a ? sa : sb;
                        for (unsigned i = 0; i < k; i++) {
                                uint64_t t0 = now_ns();
                                r = f(c);
                                uint64_t t1 = now_ns();
                                if (r < 0)
                                        return r;
                                samples_add(s, t1 - t0);
                        }
                }
                done += k;
                round++;
        }
        cpu_sample(c, u, 1);
        return 0;
}

static char *us_cell(Samples *s) {
        return strf("p50 %.0f µs, p99 %.0f µs", samples_pct(s, 50) / 1e3, samples_pct(s, 99) / 1e3);
}

typedef enum GoalKind {
        GOAL_RATIO,       /* p50(vmsupd) / p50(raw) ≤ limit */
        GOAL_OVERHEAD_US, /* p50(vmsupd) - p50(raw) ≤ limit µs */
} GoalKind;

typedef struct PairSpec {
        const char *id, *figure;
        op_fn sup, raw;
        const char *raw_what; /* the QMP command the raw side sends */
        GoalKind kind;
        double limit;
        const char *goal;
} PairSpec;

/* Returns the supervisor's CPU per call (µs), or a negative number when the row failed. */
static double pair_row(Ctx *c, const PairSpec *p) {
        Samples s_sup = {}, s_raw = {};
        double sup_cpu = -1;
        unsigned calls = cfg.warmup + cfg.iterations;
        CpuUse u = {};
        int r;

        c->err[0] = '\0';
        r = run_pair(c, p->sup, p->raw, &s_sup, &s_raw, &u);
        if (r < 0)
                row_error(p->id, p->figure, p->goal, "%s", c->err[0] ? c->err : strerror(-r));
        else {
                double ratio = samples_pct(&s_sup, 50) / samples_pct(&s_raw, 50);
                double over = (samples_pct(&s_sup, 50) - samples_pct(&s_raw, 50)) / 1e3;
                bool met = p->kind == GOAL_RATIO ? ratio <= p->limit : over <= p->limit;
                _cleanup_free_ char *what = strf("QMP %s on QEMU's own socket", p->raw_what);
                json_t *d = json_pack("{s:s,s:o,s:o,s:s,s:f,s:f,s:o}", "unit", "us", "vmsupd", samples_json(&s_sup, 1e3),
                                      "raw", samples_json(&s_raw, 1e3), "raw_is", what, "ratio_p50", ratio,
                                      "overhead_p50_us", over, "cpu_us_per_call", cpu_json(&u, calls));
                _cleanup_free_ char *n = cpu_note(p->id, &u, calls), *a = us_cell(&s_sup), *b = us_cell(&s_raw),
                                    *rb = strf("%s: %s", p->raw_what, b),
                                    *q = p->kind == GOAL_RATIO ? strf("%.2f× (%+.0f µs)", ratio, over)
                                                               : strf("%+.0f µs (%.2f×)", over, ratio);
                note_add("%s", n);
                row_add(p->id, p->figure, a, rb, q, p->goal, met ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
                sup_cpu = (double) (u.sup[1] - u.sup[0]) / (1e3 * calls);
        }
        samples_free(&s_sup);
        samples_free(&s_raw);
        return sup_cpu;
}

/* ---- 16 clients ---- */

typedef struct Load Load;
typedef struct LoadClient {
        Load *load;
        sd_bus *bus;
        uint64_t t0;
} LoadClient;

struct Load {
        sd_event *event;
        const char *dest;
        bool measuring, stopping;
        unsigned inflight;
        uint64_t count, errors, wrong;
        Samples lat;
        uint64_t t_start, t_end;
        pid_t sup_pid;
        uint64_t cpu_sup[2], cpu_bus[2], cpu_self[2];
};

static int load_send(LoadClient *c);

static int on_load_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        LoadClient *c = userdata;
        Load *l = c->load;
        uint64_t t1 = now_ns();
        const char *s;

        l->inflight--;
        if (sd_bus_message_is_method_error(m, NULL))
                l->errors++;
        else if (sd_bus_message_read(m, "v", "s", &s) < 0 || !streq(s, "running"))
                l->wrong++;
        else if (l->measuring) {
                l->count++;
                samples_add(&l->lat, t1 - c->t0);
        }
        if (!l->stopping) {
                if (load_send(c) < 0)
                        l->errors++;
        } else if (l->inflight == 0)
                (void) sd_event_exit(l->event, 0);
        return 0;
}

static int load_send(LoadClient *c) {
        int r;

        c->t0 = now_ns();
        r = sd_bus_call_method_async(c->bus, NULL, c->load->dest, BUS_VM_PATH, "org.freedesktop.DBus.Properties",
                                     "Get", on_load_reply, c, "ss", "org.vmsup.VM1", "State");
        if (r >= 0)
                c->load->inflight++;
        return r;
}

static void load_cpu(Load *l, int i) {
        (void) proc_cpu_ns(l->sup_pid, &l->cpu_sup[i]);
        if (cfg.dbus_pid > 0)
                (void) proc_cpu_ns(cfg.dbus_pid, &l->cpu_bus[i]);
        (void) proc_cpu_ns(getpid(), &l->cpu_self[i]);
}

static int on_load_start(sd_event_source *s, uint64_t usec, void *userdata) {
        Load *l = userdata;
        load_cpu(l, 0);
        l->t_start = now_ns();
        l->measuring = true;
        return 0;
}

static int on_load_end(sd_event_source *s, uint64_t usec, void *userdata) {
        Load *l = userdata;
        l->t_end = now_ns();
        l->measuring = false;
        l->stopping = true;
        load_cpu(l, 1);
        return 0;
}

/* The bus path's rate in this run, for the direct row's goal (negative: not measured). */
static double clients_bus_rate = -1;

/* 16 clients on the bus (direct == NULL), or on the direct socket of supervisor direct. */
static void bench_clients(const char *dest, pid_t sup_pid, const char *direct) {
        const char *id = direct ? "clients16_direct" : "clients16";
        const char *figure = direct ? "… the same on the direct socket (no bus daemon)"
                                    : "calls/s, 16 concurrent clients reading State";
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_free_ LoadClient *clients = calloc(cfg.clients, sizeof(LoadClient));
        Load l = { .dest = direct ? NULL : dest, .sup_pid = sup_pid };
        _cleanup_free_ char *goal = direct && clients_bus_rate > 0
                                            ? strf("≥ 2 × the bus path (%.0f/s)", clients_bus_rate)
                                            : strdup(direct ? "≥ 2 × the bus path" : "≥ 15,000/s on 2 cores");
        int r;

        if (!clients || !goal || sd_event_new(&event) < 0) {
                row_error(id, figure, goal, "out of memory");
                return;
        }
        l.event = event;
        for (unsigned i = 0; i < cfg.clients; i++) {
                clients[i].load = &l;
                r = direct ? direct_open(direct, &clients[i].bus) : bus_open(&clients[i].bus);
                if (r >= 0)
                        r = sd_bus_attach_event(clients[i].bus, event, 0);
                /* Each client is known to the supervisor (credentials cached) before the clock runs,
                 * as a long-lived caller would be; the warm-up does that. */
                if (r < 0) {
                        row_error(id, figure, goal, "cannot connect client %u: %s", i, strerror(-r));
                        goto finish;
                }
        }
        uint64_t warm = cfg.quick ? 300 * USEC_PER_MSEC : USEC_PER_SEC;
        (void) sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, warm, 0, on_load_start, &l);
        (void) sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, warm + (uint64_t) (cfg.seconds * 1e6), 0,
                                          on_load_end, &l);
        for (unsigned i = 0; i < cfg.clients; i++)
                if ((r = load_send(&clients[i])) < 0) {
                        row_error(id, figure, goal, "cannot send: %s", strerror(-r));
                        goto finish;
                }
        r = sd_event_loop(event);
        if (r < 0 || l.errors > 0 || l.wrong > 0 || l.count == 0) {
                row_error(id, figure, goal, "%" PRIu64 " errors, %" PRIu64 " wrong answers (loop %d)",
                          l.errors, l.wrong, r);
                goto finish;
        }

        {
                double secs = (double) (l.t_end - l.t_start) / 1e9;
                double rate = (double) l.count / secs;
                double per_call = 1e-3 / (double) l.count; /* ns in total → µs per call */
                double sup_us = (double) (l.cpu_sup[1] - l.cpu_sup[0]) * per_call;
                double bus_us = cfg.dbus_pid > 0 ? (double) (l.cpu_bus[1] - l.cpu_bus[0]) * per_call : NAN;
                double cli_us = (double) (l.cpu_self[1] - l.cpu_self[0]) * per_call;
                json_t *data = json_pack("{s:f,s:I,s:f,s:i,s:o,s:f,s:f,s:f}", "calls_per_sec", rate, "calls",
                                         (json_int_t) l.count, "seconds", secs, "clients", (int) cfg.clients,
                                         "latency_us", samples_json(&l.lat, 1e3), "cpu_us_per_call_vmsupd", sup_us,
                                         "cpu_us_per_call_dbus_daemon", isnan(bus_us) ? -1.0 : bus_us,
                                         "cpu_us_per_call_clients", cli_us);
                _cleanup_free_ char *sup = strf("%.0f calls/s (latency p50 %.0f µs, p99 %.0f µs)", rate,
                                                samples_pct(&l.lat, 50) / 1e3, samples_pct(&l.lat, 99) / 1e3);
                _cleanup_free_ char *cpu = strf("CPU per call: vmsupd %.1f µs, dbus-daemon %.1f µs, clients %.1f µs",
                                                sup_us, bus_us, cli_us),
                                    *ratio = direct && clients_bus_rate > 0
                                                     ? strf("%.2f × the bus path; %s", rate / clients_bus_rate, cpu)
                                                     : strdup(cpu);
                _cleanup_free_ char *base = direct && clients_bus_rate > 0 ? strf("bus: %.0f calls/s", clients_bus_rate)
                                                                           : NULL;
                bool met = direct ? clients_bus_rate > 0 && rate >= 2 * clients_bus_rate : rate >= 15000;

                if (!direct)
                        clients_bus_rate = rate;
                row_add(id, figure, sup, base ?: "—", ratio ?: cpu, goal, met ? VERDICT_MET : VERDICT_MISSED, data);
                json_decref(data);
        }
finish:
        for (unsigned i = 0; i < cfg.clients; i++)
                sd_bus_flush_close_unref(clients[i].bus);
        samples_free(&l.lat);
}

/* ---- the direct socket against the bus ---- */

static void bench_direct(Ctx *c, const char *dest, pid_t sup_pid) {
        static const char *figure = "read `State` on the direct socket (no bus daemon)";
        static const char *goal = "p50 ≤ 0.5 × the bus path";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *direct = NULL;
        Samples s_direct = {}, s_bus = {};
        unsigned calls = cfg.warmup + cfg.iterations;
        CpuUse u = {};
        int r;

        r = direct_open("bench", &direct);
        if (r < 0) {
                row_error("state_direct", figure, goal, "cannot connect to the direct socket: %s", strerror(-r));
                return;
        }
        c->direct = direct;
        c->err[0] = '\0';
        r = run_pair(c, op_direct_state, op_bus_state, &s_direct, &s_bus, &u);
        if (r < 0)
                row_error("state_direct", figure, goal, "%s", c->err[0] ? c->err : strerror(-r));
        else {
                double ratio = samples_pct(&s_direct, 50) / samples_pct(&s_bus, 50);
                /* CPU of both sides together: the direct calls cost the bus daemon nothing. */
                double per = 1e-3 / (double) (2 * calls);
                json_t *d = json_pack("{s:s,s:o,s:o,s:f,s:f,s:f}", "unit", "us", "direct",
                                      samples_json(&s_direct, 1e3), "bus", samples_json(&s_bus, 1e3), "ratio_p50",
                                      ratio, "vmsupd_cpu_us_per_call_both_sides", (u.sup[1] - u.sup[0]) * per,
                                      "dbus_daemon_cpu_us_per_call_both_sides", (u.bus[1] - u.bus[0]) * per);
                _cleanup_free_ char *a = us_cell(&s_direct), *b = us_cell(&s_bus), *rb = strf("bus: %s", b),
                                    *q = strf("%.2f×", ratio);
                note_add("state_direct: the same supervisor, one connection each, alternating; over both sides "
                         "vmsupd spent %.1f µs of CPU per call and dbus-daemon %.1f µs (all of it on the bus side).",
                         (u.sup[1] - u.sup[0]) * per, (u.bus[1] - u.bus[0]) * per);
                row_add("state_direct", figure, a, rb, q, goal, ratio <= 0.5 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
        }
        c->direct = NULL;
        samples_free(&s_direct);
        samples_free(&s_bus);

        if (clients_bus_rate < 0)
                bench_clients(dest, sup_pid, NULL);
        bench_clients(dest, sup_pid, "bench");
}

/* ---- memory ---- */

void memory_row(const char *id, const char *figure, pid_t sup, pid_t qemu) {
        uint64_t pss = 0, rss = 0, qpss = 0, qrss = 0;
        const char *goal = "PSS ≤ 2 MiB";
        int r;

        r = proc_smaps_rollup(sup, &pss, &rss);
        if (r < 0) {
                row_error(id, figure, goal, "smaps_rollup of %d: %s", (int) sup, strerror(-r));
                return;
        }
        if (qemu > 0)
                (void) proc_smaps_rollup(qemu, &qpss, &qrss);
        json_t *data = json_pack("{s:I,s:I,s:I,s:I}", "pss_kib", (json_int_t) pss, "rss_kib", (json_int_t) rss,
                                 "qemu_pss_kib", (json_int_t) qpss, "qemu_rss_kib", (json_int_t) qrss);
        _cleanup_free_ char *sup_cell = strf("PSS %.2f MiB, RSS %.2f MiB", pss / 1024.0, rss / 1024.0);
        _cleanup_free_ char *raw_cell = strf("(its QEMU: PSS %.1f MiB, RSS %.1f MiB)", qpss / 1024.0, qrss / 1024.0);
        row_add(id, figure, sup_cell, raw_cell, NULL, goal, pss <= 2048 ? VERDICT_MET : VERDICT_MISSED, data);
        json_decref(data);
}

/* ---- a caller that is not root ---- */

/* The three calls above, repeated on one connection by a caller whose privileges come
 * from the VM's ACL (VM.Audit + VM.Monitor): the long-lived client the credential cache
 * exists for. Every answer must be the one root gets. */
static void bench_nonroot(Ctx *root_ctx) {
        static const char *figure = "same 3 calls by a non-root caller (ACL: VM.Audit + VM.Monitor), one connection";
        static const char *goal = "every call answered";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        static const struct {
                const char *name;
                op_fn op;
        } ops[] = {
                { "State", op_bus_state },
                { "GetStatus", op_bus_get_status },
                { "HumanCommand", op_bus_hmp },
        };
        Samples s[ELEMENTSOF(ops)] = {};
        unsigned n = cfg.iterations / 10 ?: 1;
        int r;

        r = bus_open_as(cfg.user, &bus);
        if (r < 0) {
                row_error("nonroot", figure, goal, "cannot connect as %s: %s", cfg.user, strerror(-r));
                return;
        }
        Ctx c = *root_ctx;
        c.bus = bus;
        for (unsigned i = 0; i < n; i++)
                for (size_t k = 0; k < ELEMENTSOF(ops); k++) {
                        uint64_t t0 = now_ns();
                        c.err[0] = '\0';
                        r = ops[k].op(&c);
                        uint64_t t1 = now_ns();
                        if (r < 0) {
                                /* Measured fine, answered wrong: the goal is missed, not the harness. */
                                _cleanup_free_ char *cell = strf("call %u of %s failed: %s", i + 1, ops[k].name,
                                                                 c.err[0] ? c.err : strerror(-r));
                                json_t *d = json_pack("{s:s,s:s}", "user", cfg.user, "failure", cell);
                                row_add("nonroot", figure, cell, NULL, NULL, goal, VERDICT_MISSED, d);
                                json_decref(d);
                                goto finish;
                        }
                        samples_add(&s[k], t1 - t0);
                }
        {
                json_t *d = json_pack("{s:s,s:s,s:o,s:o,s:o}", "user", cfg.user, "unit", "us", "State",
                                      samples_json(&s[0], 1e3), "GetStatus", samples_json(&s[1], 1e3), "HumanCommand",
                                      samples_json(&s[2], 1e3));
                _cleanup_free_ char *a = strf("p50: State %.0f µs, GetStatus %.0f µs, HumanCommand %.0f µs (%u each)",
                                              samples_pct(&s[0], 50) / 1e3, samples_pct(&s[1], 50) / 1e3,
                                              samples_pct(&s[2], 50) / 1e3, n);
                row_add("nonroot", figure, a, NULL, NULL, goal, VERDICT_MET, d);
                json_decref(d);
        }
finish:
        for (size_t k = 0; k < ELEMENTSOF(ops); k++)
                samples_free(&s[k]);
}

/* ---- a second caller while another floods ---- */

/* The flood: FLOOD_CONNECTIONS connections of one user, each keeping FLOOD_DEPTH GetStatus
 * calls in flight (a new one as each is answered), until killed. */
#define FLOOD_CONNECTIONS 32U
#define FLOOD_DEPTH 8U

typedef struct FloodCounts {
        uint64_t ok, busy, other;
} FloodCounts;

typedef struct FloodConn {
        sd_bus *bus;
        const char *dest;
        FloodCounts *counts;
} FloodConn;

static int flood_send(FloodConn *f);

static int on_flood_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        FloodConn *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (!e)
                __atomic_add_fetch(&f->counts->ok, 1, __ATOMIC_RELAXED);
        else if (streq_ptr(e->name, "org.vmsup.Error.Busy"))
                __atomic_add_fetch(&f->counts->busy, 1, __ATOMIC_RELAXED);
        else
                __atomic_add_fetch(&f->counts->other, 1, __ATOMIC_RELAXED);
        (void) flood_send(f);
        return 0;
}

static int flood_send(FloodConn *f) {
        return sd_bus_call_method_async(f->bus, NULL, f->dest, BUS_VM_PATH, "org.vmsup.VM1", "GetStatus",
                                        on_flood_reply, f, NULL);
}

/* In a child: floods until killed. */
_noreturn_ static void flood_child(const char *user, const char *dest, FloodCounts *counts) {
        static FloodConn conns[FLOOD_CONNECTIONS];
        sd_event *event = NULL;

        if (sd_event_new(&event) < 0)
                _exit(1);
        for (unsigned i = 0; i < FLOOD_CONNECTIONS; i++) {
                conns[i] = (FloodConn) { .dest = dest, .counts = counts };
                if (bus_open_as(user, &conns[i].bus) < 0 || sd_bus_attach_event(conns[i].bus, event, 0) < 0)
                        _exit(1);
                for (unsigned k = 0; k < FLOOD_DEPTH; k++)
                        if (flood_send(&conns[i]) < 0)
                                _exit(1);
        }
        (void) sd_event_loop(event);
        _exit(0);
}

static void flood_row(Ctx *root_ctx, const char *id, const char *flooder, const char *who) {
        static const char *goal = "every call answered";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        static const struct {
                const char *name;
                op_fn op;
        } ops[] = {
                { "State", op_bus_state },
                { "GetStatus", op_bus_get_status },
                { "HumanCommand", op_bus_hmp },
        };
        Samples s[ELEMENTSOF(ops)] = {};
        unsigned failed[ELEMENTSOF(ops)] = {}, n = cfg.iterations / 10 ?: 1;
        _cleanup_free_ char *figure = strf("a second caller (VM.Audit + VM.Monitor, its own connection): State, "
                                           "GetStatus, HumanCommand %s", who);
        FloodCounts *counts = MAP_FAILED, before = {}, after = {};
        char last_err[256] = "";
        pid_t child = 0;
        uint64_t t_flood = 0, t0_row, sup_cpu0 = 0, sup_cpu1 = 0, bus_cpu0 = 0, bus_cpu1 = 0;
        double secs_row, sup_pct, bus_pct;
        int r;

        r = bus_open_as(cfg.user, &bus);
        if (r < 0) {
                row_error(id, figure, goal, "cannot connect as %s: %s", cfg.user, strerror(-r));
                return;
        }
        if (flooder) {
                counts = mmap(NULL, sizeof *counts, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                if (counts == MAP_FAILED) {
                        row_error(id, figure, goal, "mmap: %m");
                        return;
                }
                *counts = (FloodCounts) {};
                child = fork();
                if (child < 0) {
                        row_error(id, figure, goal, "fork: %m");
                        goto finish;
                }
                if (child == 0)
                        flood_child(flooder, root_ctx->dest, counts);
                child_track(child);
                /* The flood under way: every connection up and answered at least once. */
                sleep(1);
                before = *counts;
                t_flood = now_ns();
        }
        Ctx c = *root_ctx;
        c.bus = bus;
        /* What the supervisor and the bus daemon spend meanwhile: a refused call costs the
         * supervisor a dispatch, and each credentials query both of them a round trip. */
        t0_row = now_ns();
        (void) proc_cpu_ns(c.sup_pid, &sup_cpu0);
        if (cfg.dbus_pid > 0)
                (void) proc_cpu_ns(cfg.dbus_pid, &bus_cpu0);
        for (unsigned i = 0; i < n; i++)
                for (size_t k = 0; k < ELEMENTSOF(ops); k++) {
                        uint64_t t0 = now_ns();
                        c.err[0] = '\0';
                        r = ops[k].op(&c);
                        uint64_t t1 = now_ns();
                        if (r < 0) {
                                failed[k]++;
                                snprintf(last_err, sizeof last_err, "%s: %s", ops[k].name,
                                         c.err[0] ? c.err : strerror(-r));
                        } else
                                samples_add(&s[k], t1 - t0);
                }
        (void) proc_cpu_ns(c.sup_pid, &sup_cpu1);
        if (cfg.dbus_pid > 0)
                (void) proc_cpu_ns(cfg.dbus_pid, &bus_cpu1);
        secs_row = (double) (now_ns() - t0_row) / 1e9;
        sup_pct = 100.0 * (double) (sup_cpu1 - sup_cpu0) / 1e9 / secs_row;
        bus_pct = 100.0 * (double) (bus_cpu1 - bus_cpu0) / 1e9 / secs_row;
        if (flooder) {
                double secs = (double) (now_ns() - t_flood) / 1e9;
                after = *counts;
                note_add("%s: the flood (%u connections × %u GetStatus in flight, as %s) got %.0f answers/s: "
                         "%.0f/s ok, %.0f/s Busy, %.0f/s other errors.",
                         id, FLOOD_CONNECTIONS, FLOOD_DEPTH, flooder,
                         (after.ok + after.busy + after.other - before.ok - before.busy - before.other) / secs,
                         (after.ok - before.ok) / secs, (after.busy - before.busy) / secs,
                         (after.other - before.other) / secs);
        }
        {
                unsigned total_failed = failed[0] + failed[1] + failed[2];
                double success = 100.0 * (3.0 * n - total_failed) / (3.0 * n);
                json_t *d = json_pack("{s:s,s:s,s:s,s:f,s:o,s:o,s:o,s:i,s:i,s:i,s:I,s:I,s:I,s:f,s:f}", "user", cfg.user,
                                      "flooder", flooder ?: "", "unit", "us", "success_pct", success, "State",
                                      samples_json(&s[0], 1e3), "GetStatus", samples_json(&s[1], 1e3),
                                      "HumanCommand", samples_json(&s[2], 1e3), "failed_state", (int) failed[0],
                                      "failed_getstatus", (int) failed[1], "failed_hmp", (int) failed[2],
                                      "flood_ok", (json_int_t) (after.ok - before.ok), "flood_busy",
                                      (json_int_t) (after.busy - before.busy), "flood_other",
                                      (json_int_t) (after.other - before.other), "sup_cpu_pct", sup_pct,
                                      "bus_cpu_pct", cfg.dbus_pid > 0 ? bus_pct : -1.0);
                _cleanup_free_ char *a = strf("p99: State %.0f µs, GetStatus %.0f µs, HumanCommand %.0f µs; "
                                              "%.1f%% of %u calls answered; CPU: supervisor %.0f%%, bus daemon %.0f%%",
                                              samples_pct(&s[0], 99) / 1e3, samples_pct(&s[1], 99) / 1e3,
                                              samples_pct(&s[2], 99) / 1e3, success, 3 * n, sup_pct, bus_pct);
                if (total_failed > 0)
                        note_add("%s: %u calls of the second caller failed; the last: %s", id, total_failed, last_err);
                row_add(id, figure, a, NULL, NULL, goal, total_failed == 0 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
        }
finish:
        if (child > 0) {
                (void) kill(child, SIGKILL);
                (void) waitpid(child, NULL, 0);
                child_untrack(child);
        }
        if (counts != MAP_FAILED)
                (void) munmap(counts, sizeof *counts);
        for (size_t k = 0; k < ELEMENTSOF(ops); k++)
                samples_free(&s[k]);
}

static void bench_flood(Ctx *c) {
        flood_row(c, "flood_base", NULL, "(nobody else calling)");
        if (cfg.none_user)
                flood_row(c, "flood_none", cfg.none_user, "while a user with no right floods GetStatus");
        if (cfg.flood_user)
                flood_row(c, "flood_audit", cfg.flood_user,
                          "while another user with the same rights floods GetStatus");
}

/* ---- the section ---- */

void bench_latency(void) {
        static const char *f_state = "read `State` (Properties.Get) round trip";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *dest = vm_dest("bench");
        RawQemu raw;
        uint32_t qemu_pid = 0;
        pid_t pid;
        int r;

        pid = vmsupd_spawn("bench");
        r = pid < 0 ? pid : vmsupd_wait_ready(&pid, 1, 60 * USEC_PER_SEC);
        if (r < 0) {
                row_error("state", f_state, "p50 ≤ raw", "vmsupd did not come up: %s", strerror(-r));
                if (pid > 0)
                        processes_stop(&pid, 1, 5 * USEC_PER_SEC);
                return;
        }
        r = raw_qemu_start("rawqmp", &raw);
        if (r < 0) {
                row_error("state", f_state, "p50 ≤ raw", "raw QEMU did not come up: %s", strerror(-r));
                raw_qemu_free(&raw);
                processes_stop(&pid, 1, 5 * USEC_PER_SEC);
                return;
        }
        r = bus_open(&bus);
        if (r >= 0)
                r = bus_get_state(bus, dest, "running");
        if (r >= 0)
                r = bus_get_u32(bus, dest, "Pid", &qemu_pid);
        if (r < 0) {
                row_error("state", f_state, "p50 ≤ raw", "the VM is not running: %s", strerror(-r));
                goto finish;
        }
        Ctx c = { .bus = bus, .dest = dest, .raw = &raw, .sup_pid = pid, .sup_qemu_pid = (pid_t) qemu_pid };

        static const PairSpec pairs[] = {
                { "state", "read `State` (Properties.Get) round trip", op_bus_state, op_raw_query_status,
                  "query-status", GOAL_RATIO, 1.0, "p50 ≤ raw" },
                { "hmp", "`HumanCommand(\"info status\")`", op_bus_hmp, op_raw_hmp, "human-monitor-command",
                  GOAL_OVERHEAD_US, 100, "p50 overhead ≤ 100 µs" },
                { "getstatus", "`GetStatus`", op_bus_get_status, op_raw_query_status, "query-status", GOAL_RATIO,
                  1.2, "p50 ≤ 1.2 × raw" },
        };
        double cpu[ELEMENTSOF(pairs)];
        for (size_t k = 0; k < ELEMENTSOF(pairs); k++)
                cpu[k] = section_enabled(pairs[k].id) ? pair_row(&c, &pairs[k]) : -1;
        if (cpu[0] > 0 && cpu[1] > 0) {
                /* The supervisor's own cost of a monitor command against a property read, from the
                 * two rows above (each side's calls only: the raw side never reaches it). */
                static const char *f = "supervisor CPU per `HumanCommand` against per `State` read";
                _cleanup_free_ char *a = strf("%.1f µs per HumanCommand", cpu[1]),
                                    *b = cpu[2] > 0 ? strf("State: %.1f µs, GetStatus: %.1f µs", cpu[0], cpu[2])
                                                    : strf("State: %.1f µs", cpu[0]),
                                    *q = strf("%.2f×", cpu[1] / cpu[0]);
                json_t *d = json_pack("{s:s,s:f,s:f,s:f}", "unit", "us", "hmp", cpu[1], "state", cpu[0], "getstatus",
                                      cpu[2]);
                row_add("hmp_cpu", f, a, b, q, "≤ 2 × the State read", cpu[1] <= 2 * cpu[0] ? VERDICT_MET : VERDICT_MISSED,
                        d);
                json_decref(d);
        }

        /* The same two calls on the direct socket: what is left without the bus daemon. */
        if (section_enabled("direct")) {
                static const PairSpec direct_pairs[] = {
                        { "hmp_direct", "… `HumanCommand(\"info status\")` on the direct socket", op_direct_hmp,
                          op_raw_hmp, "human-monitor-command", GOAL_OVERHEAD_US, 100, "p50 overhead ≤ 100 µs" },
                        { "getstatus_direct", "… `GetStatus` on the direct socket", op_direct_get_status,
                          op_raw_query_status, "query-status", GOAL_RATIO, 1.2, "p50 ≤ 1.2 × raw" },
                };
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *direct = NULL;

                r = direct_open("bench", &direct);
                if (r < 0)
                        row_error("hmp_direct", direct_pairs[0].figure, direct_pairs[0].goal,
                                  "cannot connect to the direct socket: %s", strerror(-r));
                else {
                        c.direct = direct;
                        for (size_t k = 0; k < ELEMENTSOF(direct_pairs); k++)
                                (void) pair_row(&c, &direct_pairs[k]);
                        c.direct = NULL;
                }
        }

        if (section_enabled("nonroot") && cfg.user)
                bench_nonroot(&c);

        if (section_enabled("flood") && cfg.user)
                bench_flood(&c);

        if (section_enabled("clients"))
                bench_clients(dest, pid, NULL);

        if (section_enabled("direct"))
                bench_direct(&c, dest, pid);

        if (section_enabled("memory")) {
                /* Idle: after the load above, nothing talks to it for a moment. */
                sleep(1);
                memory_row("mem_idle_none",
                           "supervisor memory, idle, running VM (`machine: none`, after the load above)", pid,
                           (pid_t) qemu_pid);
        }

finish:
        raw_qemu_free(&raw);
        processes_stop(&pid, 1, 10 * USEC_PER_SEC);
}
