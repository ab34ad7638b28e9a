/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupd --stop-orphan (stop-orphan.h). Runs outside the event loop: a short-lived command. */

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

#include <systemd/sd-bus.h>

#include "launch.h"
#include "log.h"
#include "stop-orphan.h"

static uint64_t now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

/* 1 when a stop job is queued for unit, 0 when not, -errno when systemd cannot be asked. */
static int stop_job_queued(sd_bus *bus, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *type = NULL;
        const char *path, *job_path;
        uint32_t id;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", "GetUnit", &error, &reply, "s", unit);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *job = NULL;
                r = sd_bus_get_property(bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit", "Job",
                                        &error, &job, "(uo)");
                if (r < 0)
                        return r;
                r = sd_bus_message_read(job, "(uo)", &id, &job_path);
                if (r < 0)
                        return r;
                if (id == 0)
                        return 0;
                r = sd_bus_get_property_string(bus, "org.freedesktop.systemd1", job_path,
                                               "org.freedesktop.systemd1.Job", "JobType", &error, &type);
        }
        if (r < 0)
                return r;
        return streq(type, "stop");
}

/* Whether the unit stops for good (see stop-orphan.h). */
static bool stopping_for_good(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *unit = NULL;
        const char *result = getenv("SERVICE_RESULT"), *code = getenv("EXIT_CODE"), *status = getenv("EXIT_STATUS");
        uint64_t until;
        int r;

        if (!result)
                return true; /* by hand */
        if (code && status && streq(code, "exited") && streq(status, "3"))
                return false; /* handed over: the next supervisor adopts QEMU */
        if (streq(result, "success"))
                return true;
        if (asprintf(&unit, "vmsup@%s.service", name) < 0)
                return false;
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_warning_errno(r, "VM %s: cannot ask systemd whether %s stops for good, leaving QEMU: %m", name, unit);
                return false;
        }
        /* The stop that follows a kill comes a moment after the death it follows. */
        until = now_mono() + STOP_ORPHAN_JOB_WAIT_USEC;
        for (;;) {
                r = stop_job_queued(bus, unit);
                if (r > 0)
                        return true;
                if (r < 0) {
                        log_warning_errno(r, "VM %s: cannot read %s's job, leaving QEMU: %m", name, unit);
                        return false;
                }
                if (now_mono() >= until)
                        return false;
                (void) poll(NULL, 0, 100);
        }
}

int stop_orphan_run(const char *runtime_dir, const char *name) {
        _cleanup_free_ char *dir = NULL;
        LaunchAdoption a;
        struct pollfd p;
        int r;

        if (asprintf(&dir, "%s/%s", runtime_dir, name) < 0)
                return log_oom();
        r = launch_adopt(dir, &a);
        if (IN_SET(r, -ENOENT, -ECONNREFUSED, -ESRCH))
                return 0; /* no launcher, or nothing running: nothing left */
        if (r < 0)
                return log_error_errno(r, "VM %s: cannot reach the QEMU launcher in %s: %m", name, dir);
        if (!a.alive) {
                launch_adoption_release(&a);
                return 0;
        }
        if (!stopping_for_good(name)) {
                log_info("VM %s: the supervisor will be restarted and adopts QEMU (pid %d): leaving it running.", name,
                         (int) a.pid);
                launch_adoption_release(&a);
                return 0;
        }
        log_notice("VM %s: the unit stops while no supervisor runs: ending QEMU (pid %d).", name, (int) a.pid);
        if (syscall(SYS_pidfd_send_signal, a.pidfd, SIGTERM, NULL, 0) < 0)
                log_warning_errno(errno, "VM %s: SIGTERM to QEMU failed: %m", name);
        p = (struct pollfd) { .fd = a.pidfd, .events = POLLIN };
        r = poll(&p, 1, (int) (STOP_ORPHAN_GRACE_USEC / 1000U));
        if (r == 0) {
                log_warning("VM %s: QEMU ignored SIGTERM for %u s, sending SIGKILL.", name,
                            (unsigned) (STOP_ORPHAN_GRACE_USEC / 1000000U));
                (void) syscall(SYS_pidfd_send_signal, a.pidfd, SIGKILL, NULL, 0);
                (void) poll(&p, 1, -1);
        }
        /* The launcher reaps QEMU and reports it to us: wait for that report, then leave. */
        p = (struct pollfd) { .fd = a.exit_fd, .events = POLLIN };
        (void) poll(&p, 1, 5000);
        launch_adoption_release(&a);
        log_info("VM %s: QEMU has ended.", name);
        return 0;
}
