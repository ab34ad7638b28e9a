/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Agent1.Command round trips (guest-ping, guest-info) through the bus against the same
 * commands sent straight to the agent socket of a second, identical guest: once syncing
 * before each command as the supervisor does (guest-sync-delimited, then the command),
 * once without a sync. The three sides run alternately in small batches. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

typedef struct AgentCtx {
        sd_bus *bus;
        const char *dest;
        RawQga *qga;
        const char *cmd;
        const char *want_key; /* guest-info: the reply holds this key; guest-ping: {} */
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

static int run_three(AgentCtx *c, Samples s[3], uint64_t cpu_sup[2], pid_t sup_pid) {
        agent_op ops[3] = { op_bus, op_raw_sync, op_raw_nosync };
        unsigned batch = cfg.batch < 20 ? cfg.batch : 20, done = 0, round = 0;
        int r;

        for (unsigned i = 0; i < 20; i++)
                for (unsigned k = 0; k < 3; k++)
                        if ((r = ops[k](c)) < 0)
                                return r;
        (void) proc_cpu_ns(sup_pid, &cpu_sup[0]);
        while (done < cfg.agent_iterations) {
                unsigned n = batch < cfg.agent_iterations - done ? batch : cfg.agent_iterations - done;
                for (unsigned j = 0; j < 3; j++) {
                        unsigned k = (j + round) % 3; /* each side goes first in turn */
                        for (unsigned i = 0; i < n; i++) {
                                uint64_t t0 = now_ns();
                                r = ops[k](c);
                                uint64_t t1 = now_ns();
                                if (r < 0)
                                        return r;
                                samples_add(&s[k], t1 - t0);
                        }
                }
                done += n;
                round++;
        }
        (void) proc_cpu_ns(sup_pid, &cpu_sup[1]);
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

static void agent_row(AgentCtx *c, const char *id, const char *figure, pid_t sup_pid) {
        static const char *goal = "p50 overhead ≤ 100 µs over raw with sync";
        Samples s[3] = {};
        uint64_t cpu[2] = {};
        int r;

        c->err[0] = '\0';
        r = run_three(c, s, cpu, sup_pid);
        if (r < 0)
                row_error(id, figure, goal, "%s", c->err[0] ? c->err : strerror(-r));
        else {
                double p_bus = samples_pct(&s[0], 50), p_sync = samples_pct(&s[1], 50), p_nosync = samples_pct(&s[2], 50);
                double over = (p_bus - p_sync) / 1e3;
                double sup_us = (double) (cpu[1] - cpu[0]) / 1e3 / cfg.agent_iterations;
                json_t *d = json_pack("{s:s,s:o,s:o,s:o,s:f,s:f}", "unit", "us", "vmsupd", samples_json(&s[0], 1e3),
                                      "raw_sync", samples_json(&s[1], 1e3), "raw_nosync", samples_json(&s[2], 1e3),
                                      "overhead_p50_us", over, "vmsupd_cpu_us_per_command", sup_us);
                _cleanup_free_ char *a = strf("p50 %.0f µs, p99 %.0f µs", p_bus / 1e3, samples_pct(&s[0], 99) / 1e3),
                                    *b = strf("with sync: p50 %.0f µs, p99 %.0f µs; without: p50 %.0f µs", p_sync / 1e3,
                                              samples_pct(&s[1], 99) / 1e3, p_nosync / 1e3),
                                    *q = strf("%+.0f µs over raw with sync (%.2f×); vmsupd CPU %.0f µs per command",
                                              over, p_bus / p_sync, sup_us);
                row_add(id, figure, a, b, q, goal, over <= 100 ? VERDICT_MET : VERDICT_MISSED, d);
                json_decref(d);
        }
        for (unsigned k = 0; k < 3; k++)
                samples_free(&s[k]);
}

void bench_agent(void) {
        static const char *f_ping = "`Agent1.Command` guest-ping round trip (tiny guest, TCG)";
        static const char *f_info = "`Agent1.Command` guest-info round trip (tiny guest, TCG)";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
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
        AgentCtx c = { .bus = bus, .dest = dest, .qga = &qga };
        c.cmd = "{\"execute\":\"guest-ping\"}";
        agent_row(&c, "agent_ping", f_ping, pid);
        c.cmd = "{\"execute\":\"guest-info\"}";
        c.want_key = "supported_commands";
        agent_row(&c, "agent_info", f_info, pid);
        note_add("Agent rows: the raw side is a blocking C client on the agent socket of a second guest with the "
                 "same definition; \"with sync\" sends guest-sync-delimited (0xFF first) and waits for its answer "
                 "before each command, as the supervisor does; %u commands per side, alternating in batches.",
                 cfg.agent_iterations);

finish:
        raw_qga_close(&qga);
        raw_qemu_free(&raw);
        if (pid > 0)
                processes_stop(&pid, 1, 10 * USEC_PER_SEC);
}
