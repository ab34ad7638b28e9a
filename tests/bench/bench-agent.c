/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Agent1.Command round trips (guest-ping, guest-info) through the bus and on the direct
 * socket, against the same commands sent straight to the agent socket of a second, identical
 * guest: once syncing before each command as the supervisor does (guest-sync-delimited, then
 * the command), once without a sync. The four sides run alternately in small batches.
 *
 * The two guests are separate TCG machines sharing two host CPUs with everything else, so a
 * difference between the sides is partly the guests'. The supervisor's own counters
 * (GetStats: agent.answered, agent.answer-time) say how long its guest's agent took, sync
 * included, for the calls of each side: the rest of a call's round trip is the supervisor
 * and the D-Bus transport. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

typedef struct AgentCtx {
        sd_bus *bus;
        sd_bus *direct;
        const char *dest;
        RawQga *qga;
        const char *cmd;
        const char *want_key; /* guest-info: the reply holds this key; guest-ping: {} */
        pid_t sup_pid;
        char err[256];
} AgentCtx;

static int check_reply(AgentCtx *c, json_t *v) {
        if (!json_is_object(v))
                return -EBADMSG;
        if (c->want_key)
                return json_object_get(v, c->want_key) ? 0 : -EBADMSG;
        return json_object_size(v) == 0 ? 0 : -EBADMSG;
}

static int op_bus(AgentCtx *c) {
        _cleanup_free_ char *e = NULL;
        json_auto_t *v = NULL;
        int r = bus_agent_command(c->bus, c->dest, c->cmd, &v, &e);

        if (r < 0) {
                snprintf(c->err, sizeof c->err, "%s", e ?: strerror(-r));
                return r;
        }
        return check_reply(c, v);
}

static int op_direct(AgentCtx *c) {
        _cleanup_free_ char *e = NULL;
        json_auto_t *v = NULL;
        int r = bus_agent_command(c->direct, NULL, c->cmd, &v, &e);

        if (r < 0) {
                snprintf(c->err, sizeof c->err, "direct: %s", e ?: strerror(-r));
                return r;
        }
        return check_reply(c, v);
}

/* The supervisor's agent counters: commands answered and their total time (µs). */
static int agent_counters(AgentCtx *c, uint64_t *ret_answered, uint64_t *ret_usec) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        bool have_n = false, have_t = false;
        int r;

        r = sd_bus_message_new_method_call(c->direct, &m, NULL, BUS_VM_PATH, "org.vmsup.VM1", "GetStats");
        if (r >= 0)
                r = sd_bus_message_append(m, "as", 1, "agent");
        if (r >= 0)
                r = sd_bus_call(c->direct, m, 30 * USEC_PER_SEC, &error, &reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *k;
                r = sd_bus_message_read(reply, "s", &k);
                if (r >= 0 && (streq(k, "agent.answered") || streq(k, "agent.answer-time"))) {
                        uint64_t v;
                        r = sd_bus_message_read(reply, "v", "t", &v);
                        if (streq(k, "agent.answered"))
                                *ret_answered = v, have_n = true;
                        else
                                *ret_usec = v, have_t = true;
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0) {
                snprintf(c->err, sizeof c->err, "GetStats: %s", error.message ?: strerror(-r));
                return r;
        }
        return have_n && have_t ? 0 : -EBADMSG;
}

static int op_raw_sync(AgentCtx *c) {
        json_auto_t *v = NULL;
        int r = raw_qga_command(c->qga, c->cmd, &v);

        return r < 0 ? r : check_reply(c, v);
}

static int op_raw_nosync(AgentCtx *c) {
        json_auto_t *v = NULL;
        int r = raw_qga_command_nosync(c->qga, c->cmd, &v);

        return r < 0 ? r : check_reply(c, v);
}

typedef int (*agent_op)(AgentCtx *c);

enum { SIDE_BUS, SIDE_DIRECT, SIDE_RAW_SYNC, SIDE_RAW_NOSYNC, _SIDE_MAX };

typedef struct AgentRun {
        Samples s[_SIDE_MAX];
        uint64_t cpu_ns[2];                    /* the supervisor's, over bus and direct batches */
        uint64_t answered[2], answer_usec[2]; /* the supervisor's agent counters, bus and direct */
} AgentRun;

static int run_sides(AgentCtx *c, AgentRun *run, pid_t sup_pid) {
        agent_op ops[_SIDE_MAX] = { op_bus, op_direct, op_raw_sync, op_raw_nosync };
        unsigned batch = cfg.batch < 20 ? cfg.batch : 20, done = 0, round = 0;
        int r;

        for (unsigned i = 0; i < 20; i++)
                for (unsigned k = 0; k < _SIDE_MAX; k++)
                        if ((r = ops[k](c)) < 0)
                                return r;
        while (done < cfg.agent_iterations) {
                unsigned n = batch < cfg.agent_iterations - done ? batch : cfg.agent_iterations - done;
                for (unsigned j = 0; j < _SIDE_MAX; j++) {
                        unsigned k = (j + round) % _SIDE_MAX; /* each side goes first in turn */
                        uint64_t n0 = 0, t0us = 0, n1 = 0, t1us = 0, cpu0 = 0, cpu1 = 0;
                        bool sup = k == SIDE_BUS || k == SIDE_DIRECT;

                        /* Outside the timed calls: the supervisor's counters and CPU. */
                        if (sup && ((r = agent_counters(c, &n0, &t0us)) < 0 || proc_cpu_ns(sup_pid, &cpu0) < 0))
                                return r < 0 ? r : -EIO;
                        for (unsigned i = 0; i < n; i++) {
                                uint64_t t0 = now_ns();
                                r = ops[k](c);
                                uint64_t t1 = now_ns();
                                if (r < 0)
                                        return r;
                                samples_add(&run->s[k], t1 - t0);
                        }
                        if (sup) {
                                if (proc_cpu_ns(sup_pid, &cpu1) < 0 || (r = agent_counters(c, &n1, &t1us)) < 0)
                                        return r < 0 ? r : -EIO;
                                run->cpu_ns[k] += cpu1 - cpu0;
                                run->answered[k] += n1 - n0;
                                run->answer_usec[k] += t1us - t0us;
                        }
                }
                done += n;
                round++;
        }
        return 0;
}

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

static const char *agent_goal = "p50 overhead ≤ 100 µs over raw with sync";

static void agent_report(const char *id, const char *figure, AgentRun *run) {
        const char *goal = agent_goal;
        _cleanup_free_ char *id_direct = strf("%s_direct", id), *id_in = strf("%s_inside", id);
        double p[_SIDE_MAX], agent_us[2], mean_us[2], sup_us[2];

        for (unsigned k = 0; k < _SIDE_MAX; k++)
                p[k] = samples_pct(&run->s[k], 50) / 1e3;
        for (unsigned k = 0; k < 2; k++) {
                agent_us[k] = run->answered[k] ? (double) run->answer_usec[k] / (double) run->answered[k] : 0;
                mean_us[k] = samples_mean(&run->s[k]) / 1e3;
                sup_us[k] = (double) run->cpu_ns[k] / 1e3 / cfg.agent_iterations;
        }
        double over = p[SIDE_BUS] - p[SIDE_RAW_SYNC], over_direct = p[SIDE_DIRECT] - p[SIDE_RAW_SYNC];
        json_t *d = json_pack("{s:s,s:o,s:o,s:o,s:o,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "unit", "us",
                              "vmsupd", samples_json(&run->s[SIDE_BUS], 1e3), "vmsupd_direct",
                              samples_json(&run->s[SIDE_DIRECT], 1e3), "raw_sync", samples_json(&run->s[SIDE_RAW_SYNC], 1e3),
                              "raw_nosync", samples_json(&run->s[SIDE_RAW_NOSYNC], 1e3), "overhead_p50_us", over,
                              "overhead_direct_p50_us", over_direct, "vmsupd_cpu_us_per_command", sup_us[0],
                              "vmsupd_cpu_us_per_command_direct", sup_us[1], "agent_mean_us_bus", agent_us[0],
                              "agent_mean_us_direct", agent_us[1], "call_mean_us_bus", mean_us[0],
                              "call_mean_us_direct", mean_us[1]);
        _cleanup_free_ char *a = strf("p50 %.0f µs, p99 %.0f µs", p[SIDE_BUS], samples_pct(&run->s[SIDE_BUS], 99) / 1e3),
                            *b = strf("with sync: p50 %.0f µs, p99 %.0f µs; without: p50 %.0f µs", p[SIDE_RAW_SYNC],
                                      samples_pct(&run->s[SIDE_RAW_SYNC], 99) / 1e3, p[SIDE_RAW_NOSYNC]),
                            *q = strf("%+.0f µs over raw with sync (%.2f×); vmsupd CPU %.0f µs per command", over,
                                      p[SIDE_BUS] / p[SIDE_RAW_SYNC], sup_us[0]),
                            *fd = strf("… the same on the direct socket (no bus daemon)"),
                            *ad = strf("p50 %.0f µs, p99 %.0f µs", p[SIDE_DIRECT], samples_pct(&run->s[SIDE_DIRECT], 99) / 1e3),
                            *qd = strf("%+.0f µs over raw with sync (%.2f×); vmsupd CPU %.0f µs per command",
                                       over_direct, p[SIDE_DIRECT] / p[SIDE_RAW_SYNC], sup_us[1]),
                            *fi = strf("… where a call's time went (means, from the supervisor's agent.answer-time)"),
                            *ai = strf("bus: call %.0f µs = agent %.0f µs + supervisor and transport %.0f µs; "
                                       "direct: call %.0f µs = agent %.0f µs + %.0f µs",
                                       mean_us[0], agent_us[0], mean_us[0] - agent_us[0], mean_us[1], agent_us[1],
                                       mean_us[1] - agent_us[1]),
                            *bi = strf("raw with sync: mean %.0f µs", samples_mean(&run->s[SIDE_RAW_SYNC]) / 1e3);
        row_add(id, figure, a, b, q, goal, over <= 100 ? VERDICT_MET : VERDICT_MISSED, d);
        row_add(id_direct, fd, ad, b, qd, goal, over_direct <= 100 ? VERDICT_MET : VERDICT_MISSED, NULL);
        row_add(id_in, fi, ai, bi, "—", "—", VERDICT_INFO, NULL);
        json_decref(d);
}

static void agent_row(AgentCtx *c, const char *id, const char *figure) {
        AgentRun run = {};
        int r;

        c->err[0] = '\0';
        r = run_sides(c, &run, c->sup_pid);
        if (r < 0)
                row_error(id, figure, agent_goal, "%s", c->err[0] ? c->err : strerror(-r));
        else
                agent_report(id, figure, &run);
        for (unsigned k = 0; k < _SIDE_MAX; k++)
                samples_free(&run.s[k]);
}

void bench_agent(void) {
        static const char *f_ping = "`Agent1.Command` guest-ping round trip (tiny guest, TCG)";
        static const char *f_info = "`Agent1.Command` guest-info round trip (tiny guest, TCG)";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL, *direct = NULL;
        _cleanup_free_ char *dest = vm_dest("aguest");
        RawQemu raw;
        RawQga qga = { .in = { .fd = -1 } };
        pid_t pid;
        int r;

        pid = vmsupd_spawn("aguest");
        r = raw_qemu_start("rawaguest", &raw); /* boots while the supervisor's guest boots */
        if (r < 0) {
                row_error("agent_ping", f_ping, NULL, "raw guest did not start: %s", strerror(-r));
                goto finish;
        }
        raw_qga_init(&qga, TAKE_FD(raw.qga_fd));
        r = pid < 0 ? pid : vmsupd_wait_ready(&pid, 1, 120 * USEC_PER_SEC);
        if (r >= 0)
                r = bus_open(&bus);
        if (r < 0) {
                row_error("agent_ping", f_ping, NULL, "vmsupd did not come up: %s", strerror(-r));
                goto finish;
        }
        r = wait_agents(bus, dest, &qga, 240);
        if (r < 0) {
                row_error("agent_ping", f_ping, NULL, "%s guest agent did not answer",
                          r == -EHOSTDOWN ? "raw" : "supervised");
                goto finish;
        }
        r = direct_open("aguest", &direct);
        if (r < 0) {
                row_error("agent_ping", f_ping, NULL, "cannot connect to the direct socket: %s", strerror(-r));
                goto finish;
        }
        AgentCtx c = { .bus = bus, .direct = direct, .dest = dest, .qga = &qga, .sup_pid = pid };
        c.cmd = "{\"execute\":\"guest-ping\"}";
        agent_row(&c, "agent_ping", f_ping);
        c.cmd = "{\"execute\":\"guest-info\"}";
        c.want_key = "supported_commands";
        agent_row(&c, "agent_info", f_info);
        note_add("Agent rows: the raw side is a blocking C client on the agent socket of a second guest with the "
                 "same definition; \"with sync\" sends guest-sync-delimited (0xFF first) and waits for its answer "
                 "before each command, as the supervisor does; the direct side is Agent1.Command on the "
                 "supervisor's own socket; %u commands per side, alternating in batches. The supervisor's CPU "
                 "and its agent counters are read between batches, outside the timed calls.",
                 cfg.agent_iterations);

finish:
        raw_qga_close(&qga);
        raw_qemu_free(&raw);
        if (pid > 0)
                processes_stop(&pid, 1, 10 * USEC_PER_SEC);
}
