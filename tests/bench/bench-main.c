/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsup-bench: run by tests/bench/run.sh (`make bench`), which provides the private bus
 * and the scratch directory. Settings come from the environment; see run.sh. */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

BenchConfig cfg;

static const char *env_str(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

static unsigned env_uint(const char *name, unsigned def) {
        const char *v = env_str(name);
        uint64_t u;

        if (!v)
                return def;
        if (safe_atou64(v, &u) < 0 || u == 0 || u > 1000000) {
                fprintf(stderr, "vmsup-bench: %s=%s is not a positive number, using %u\n", name, v, def);
                return def;
        }
        return (unsigned) u;
}

bool section_enabled(const char *name) {
        if (!cfg.only)
                return !streq(name, "stress"); /* minutes of 100 QEMUs: only when asked for */
        for (char **s = cfg.only; *s; s++)
                if (streq(*s, name))
                        return true;
        return false;
}

static int config_load(void) {
        const char *only;

        cfg.dir = env_str("VMSUP_BENCH_DIR");
        cfg.bus_address = env_str("VMSUP_BENCH_BUS");
        cfg.vmsupd = env_str("VMSUP_BENCH_VMSUPD");
        cfg.qemu = env_str("VMSUP_BENCH_QEMU");
        cfg.guest_dir = env_str("VMSUP_BENCH_GUEST_DIR");
        cfg.out_json = env_str("VMSUP_BENCH_OUT");
        cfg.user = env_str("VMSUP_BENCH_USER");
        cfg.flood_user = env_str("VMSUP_BENCH_FLOOD_USER");
        cfg.none_user = env_str("VMSUP_BENCH_NONE_USER");
        cfg.strict = env_str("VMSUP_BENCH_STRICT") && !streq(env_str("VMSUP_BENCH_STRICT"), "0");
        cfg.dbus_pid = (pid_t) env_uint("VMSUP_BENCH_DBUS_PID", 0);
        if (!cfg.dir || !cfg.bus_address || !cfg.vmsupd || !cfg.qemu || !cfg.guest_dir || !cfg.out_json) {
                fprintf(stderr, "vmsup-bench: run me through tests/bench/run.sh (make bench)\n");
                return -EINVAL;
        }
        cfg.quick = env_str("VMSUP_BENCH_QUICK") && !streq(env_str("VMSUP_BENCH_QUICK"), "0");
        cfg.warmup = env_uint("VMSUP_BENCH_WARMUP", cfg.quick ? 50 : 300);
        cfg.iterations = env_uint("VMSUP_BENCH_ITERATIONS", cfg.quick ? 500 : 5000);
        cfg.batch = env_uint("VMSUP_BENCH_BATCH", cfg.quick ? 50 : 100);
        cfg.clients = env_uint("VMSUP_BENCH_CLIENTS", 16);
        cfg.seconds = env_uint("VMSUP_BENCH_SECONDS", cfg.quick ? 1 : 5);
        cfg.starts = env_uint("VMSUP_BENCH_STARTS", cfg.quick ? 5 : 30);
        cfg.fleet = env_uint("VMSUP_BENCH_FLEET", cfg.quick ? 20 : 100);
        cfg.fleet_rounds = env_uint("VMSUP_BENCH_FLEET_ROUNDS", cfg.quick ? 3 : 20);
        cfg.stress_rounds = env_uint("VMSUP_BENCH_STRESS_ROUNDS", cfg.quick ? 3 : 50);
        cfg.readfile_runs = env_uint("VMSUP_BENCH_READFILE_RUNS", cfg.quick ? 1 : 3);
        cfg.readfile_mib = env_uint("VMSUP_BENCH_READFILE_MIB", cfg.quick ? 32 : 200);
        cfg.guest_mib = env_uint("VMSUP_BENCH_GUEST_MIB", cfg.readfile_mib > 100 ? 768 : 384);
        cfg.migrations = env_uint("VMSUP_BENCH_MIGRATIONS", cfg.quick ? 2 : 6);
        cfg.agent_iterations = env_uint("VMSUP_BENCH_AGENT_ITERATIONS", cfg.quick ? 100 : 1000);
        only = env_str("VMSUP_BENCH_ONLY");
        if (only) {
                _cleanup_free_ char *copy = strdup(only);
                char *save = NULL;
                for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
                        if (strv_extend(&cfg.only, t) < 0)
                                return -ENOMEM;
        }
        return 0;
}

static char *none_def(bool autostart) {
        _cleanup_free_ char *flood = cfg.flood_user ? strf(", { \"user\": \"%s\", \"privileges\": [ \"VM.Audit\", "
                                                           "\"VM.Monitor\" ] }", cfg.flood_user)
                                                    : strdup("");
        _cleanup_free_ char *acl = cfg.user ? strf(", \"acl\": [ { \"user\": \"%s\", \"privileges\": [ \"VM.Audit\", "
                                                   "\"VM.Monitor\" ] }%s ]", cfg.user, flood ?: "")
                                            : strdup("");
        return strf("{ \"qemu\": { \"binary\": \"%s\", \"machine\": \"none\", \"accel\": \"tcg\",\n"
                    "            \"memory_mib\": 16 },\n"
                    "  \"autostart\": %s, \"shutdown_timeout_sec\": 2%s }\n",
                    cfg.qemu, autostart ? "true" : "false", acl ?: "");
}

static char *guest_def(void) {
        return strf("{ \"qemu\": { \"binary\": \"%s\", \"machine\": \"q35\", \"accel\": \"tcg\", \"memory_mib\": %u,\n"
                    "            \"kernel\": \"%s/vmlinuz\", \"initrd\": \"%s/initrd.img\",\n"
                    "            \"append\": \"console=ttyS0 quiet\" },\n"
                    "  \"autostart\": true, \"shutdown_timeout_sec\": 5 }\n",
                    cfg.qemu, cfg.guest_mib, cfg.guest_dir, cfg.guest_dir);
}

/* The migration rows' guest: the tiny guest in 256 MiB, no agent; the first of each pair
 * runs, the second waits for the migration. */
static char *mig_def(bool autostart) {
        return strf("{ \"qemu\": { \"binary\": \"%s\", \"machine\": \"q35\", \"accel\": \"tcg\", \"memory_mib\": 256,\n"
                    "            \"kernel\": \"%s/vmlinuz\", \"initrd\": \"%s/initrd.img\",\n"
                    "            \"append\": \"console=ttyS0 quiet\" },\n"
                    "  \"agent\": false, \"autostart\": %s, \"shutdown_timeout_sec\": 5 }\n",
                    cfg.qemu, cfg.guest_dir, cfg.guest_dir, autostart ? "true" : "false");
}

static int define_all(void) {
        _cleanup_free_ char *none_on = none_def(true), *none_off = none_def(false), *guest = guest_def();
        _cleanup_free_ char *mig_on = mig_def(true), *mig_off = mig_def(false);
        _cleanup_free_ char *raw = strf("%s/raw", cfg.dir);
        int r = 0;

        (void) mkdir(raw, 0700);
        if ((r = define_vm("bench", none_on)) < 0 || (r = define_vm("rawqmp", none_on)) < 0 ||
            (r = define_vm("bstart", none_off)) < 0 || (r = define_vm("rawstart", none_off)) < 0 ||
            (r = define_vm("bguest", guest)) < 0 || (r = define_vm("rawguest", guest)) < 0 ||
            (r = define_vm("bmig1", mig_on)) < 0 || (r = define_vm("bmig2", mig_off)) < 0 ||
            (r = define_vm("rawmig1", mig_on)) < 0 || (r = define_vm("rawmig2", mig_off)) < 0 ||
            (r = define_vm("aguest", guest)) < 0 || (r = define_vm("rawaguest", guest)) < 0)
                return r;
        for (unsigned i = 0; i < cfg.fleet; i++) {
                _cleanup_free_ char *name = strf("fleet%03u", i);
                if ((r = define_vm(name, none_on)) < 0)
                        return r;
        }
        return 0;
}

static void on_fatal_signal(int sig) {
        children_kill_all();
        _exit(128 + sig);
}

int main(int argc, char *argv[]) {
        struct sigaction sa = { .sa_handler = on_fatal_signal };
        int r;

        if (config_load() < 0)
                return 2;
        (void) signal(SIGPIPE, SIG_IGN);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        (void) crc32_update(0, NULL, 0); /* tables built before any thread uses them */

        r = define_all();
        if (r < 0) {
                fprintf(stderr, "vmsup-bench: cannot write definitions: %s\n", strerror(-r));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("vmsup-bench: %s run: %u+%u calls per side per latency row (batches of %u, interleaved), "
               "%u clients for %.0f s, %u starts per side, %u VMs, %u × %u MiB ReadFile per side.\n",
               cfg.quick ? "quick" : "full", cfg.warmup, cfg.iterations, cfg.batch, cfg.clients, cfg.seconds,
               cfg.starts, cfg.fleet, cfg.readfile_runs, cfg.readfile_mib);

        if (section_enabled("state") || section_enabled("hmp") || section_enabled("getstatus") ||
            section_enabled("nonroot") || section_enabled("flood") || section_enabled("clients") || section_enabled("memory") ||
            section_enabled("direct")) {
                printf("vmsup-bench: round trips, 16 clients, idle memory …\n");
                bench_latency();
        }
        if (section_enabled("start")) {
                printf("vmsup-bench: Start …\n");
                bench_start();
        }
        if (section_enabled("fleet")) {
                printf("vmsup-bench: %u supervisors …\n", cfg.fleet);
                bench_fleet();
        }
        if (section_enabled("stress")) {
                printf("vmsup-bench: stress: %u rounds of %u concurrent starts …\n", cfg.stress_rounds, cfg.fleet);
                bench_stress();
        }
        if (section_enabled("readfile") || section_enabled("readfile-command") || section_enabled("writefile")) {
                printf("vmsup-bench: ReadFile (two guests under TCG) …\n");
                bench_readfile();
        }
        if (section_enabled("migrate")) {
                printf("vmsup-bench: live migration (two pairs of guests under TCG) …\n");
                bench_migrate();
        }

        if (section_enabled("agent")) {
                printf("vmsup-bench: Agent1.Command round trips (two guests under TCG) …\n");
                bench_agent();
        }
        note_add("Every timed answer is checked (State \"running\", query-status \"running\", HMP text, GetStatus "
                 "state and qmp-status, Start then State/Pid, byte counts and CRC-32 of ReadFile data).");
        note_add("Raw QMP baseline: a blocking C client (jansson) on the QMP socket of a second QEMU started with the "
                 "supervisor's own argv (vm_config_build_argv), same message shape {execute,arguments,id}.");
        note_add("Latency rows run both sides alternately in batches of %u after %u warm-up calls each; "
                 "p50/p99 are nearest-rank percentiles.",
                 cfg.batch, cfg.warmup);
        size_t missed, errors;
        report_print(&missed, &errors);
        r = report_write_json(cfg.out_json);
        if (r >= 0)
                printf("\nResults: %s\n", cfg.out_json);
        children_kill_all();
        /* A missed goal is a result; a measurement that could not be made is a failure. */
        if (r < 0 || errors > 0)
                return 1;
        return missed > 0 && cfg.strict ? 3 : 0;
}
