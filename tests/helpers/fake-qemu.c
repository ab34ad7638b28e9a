/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A stand-in for qemu-system-x86_64 that speaks just enough QMP for vmsupd, and
 * misbehaves on cue. Used as a definition's "binary".
 *
 * It takes QEMU's command line, finds the monitor's descriptor (connected, or a listener) in
 * "-chardev socket,id=vmsup-qmp,fd=N,...", greets, accepts qmp_capabilities, and
 * answers in order, one command at a time like QEMU: cont (and a RESUME event),
 * stop (STOP), query-status, quit (then exits); {} for anything else. Every
 * command line read is appended to DIR/received.
 *
 * Cues, from extra arguments "-fake-dir DIR" and "-fake-late NAME":
 *  - the command NAME is answered only once DIR/late-go exists, with a reply
 *    line of 17 MiB (over the supervisor's 16 MiB limit); then DIR/late-sent
 *    is created and the commands that queued meanwhile are answered;
 *  - once DIR/garbage-go exists, a 17 MiB line is sent although nothing was
 *    asked (a broken stream), then DIR/garbage-sent is created;
 *  - once DIR/storm-go exists, STORM_EVENTS events named STORM with data {"i":N}
 *    (N from 0) are sent as fast as the supervisor reads them, then DIR/storm-sent is
 *    created. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#define LONG_LINE (17U * 1024U * 1024U)
#define STORM_EVENTS 100000U

static const char *dir = ".";
static const char *late_name;
static int conn = -1;

static void touch(const char *name) {
        char path[4096];
        int fd;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
}

static bool exists(const char *name) {
        char path[4096];

        snprintf(path, sizeof path, "%s/%s", dir, name);
        return access(path, F_OK) == 0;
}

static void record(const char *line, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof path, "%s/received", dir);
        f = fopen(path, "ae");
        if (!f)
                return;
        fwrite(line, 1, len, f);
        fputc('\n', f);
        fclose(f);
}

static void write_all(const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(conn, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        exit(0); /* the supervisor hung up */
                }
                p += k;
                n -= (size_t) k;
        }
}

static void writef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void writef(const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        write_all(buf, (size_t) n);
}

/* {"return":{"pad":"xxxx…"},"id":ID}\n (or an event-less, id-less object) of 17 MiB. */
static void write_long_line(const char *id) {
        static const char head[] = "{\"return\":{\"pad\":\"";
        char tail[128];
        char *buf = malloc(LONG_LINE);

        if (!buf)
                exit(1);
        if (id)
                snprintf(tail, sizeof tail, "\"},\"id\":%s}\n", id);
        else
                snprintf(tail, sizeof tail, "\"}}\n");
        memcpy(buf, head, sizeof head - 1);
        memset(buf + sizeof head - 1, 'x', LONG_LINE - (sizeof head - 1));
        write_all(buf, LONG_LINE);
        write_all(tail, strlen(tail));
        free(buf);
}

static void event(const char *name) {
        writef("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"%s\"}\r\n", name);
}

/* Waits for name in dir, polling (the supervisor's side never waits on us). */
static void wait_for(const char *name) {
        while (!exists(name))
                (void) poll(NULL, 0, 50);
}

static void handle(const char *line, size_t len) {
        json_t *msg = json_loadb(line, len, 0, NULL);
        json_t *exe = json_object_get(msg, "execute"), *idv = json_object_get(msg, "id");
        const char *name = json_is_string(exe) ? json_string_value(exe) : "";
        char *id = idv ? json_dumps(idv, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

        record(line, len);
        if (!msg) {
                /* What QEMU says when its parser fails: no id. */
                writef("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n");
        } else if (late_name && strcmp(name, late_name) == 0) {
                wait_for("late-go");
                write_long_line(id ? id : "0");
                touch("late-sent");
        } else if (strcmp(name, "query-status") == 0) {
                writef("{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": %s}\r\n",
                       id ? id : "null");
        } else {
                writef("{\"return\": {}, \"id\": %s}\r\n", id ? id : "null");
                if (strcmp(name, "cont") == 0)
                        event("RESUME");
                else if (strcmp(name, "stop") == 0)
                        event("STOP");
                else if (strcmp(name, "quit") == 0) {
                        event("SHUTDOWN");
                        exit(0);
                }
        }
        free(id);
        json_decref(msg);
}

int main(int argc, char **argv) {
        static char in[1 << 20];
        size_t in_len = 0;
        bool garbage_done = false, storm_done = false;
        int lfd = -1;

        for (int i = 1; i < argc; i++) {
                const char *p;
                if (strcmp(argv[i], "-fake-dir") == 0 && i + 1 < argc)
                        dir = argv[++i];
                else if (strcmp(argv[i], "-fake-late") == 0 && i + 1 < argc)
                        late_name = argv[++i];
                else if (strcmp(argv[i], "-chardev") == 0 && i + 1 < argc && strstr(argv[i + 1], "id=vmsup-qmp,") &&
                         (p = strstr(argv[i + 1], ",fd=")))
                        lfd = atoi(p + 4);
        }
        if (lfd < 0) {
                fprintf(stderr, "fake-qemu: no -chardev socket,id=vmsup-qmp,fd=N\n");
                return 1;
        }
        /* The monitor's descriptor is connected (server=off), or a listener to accept on. */
        int listening = 0;
        socklen_t sl = sizeof listening;
        if (getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0) {
                perror("fake-qemu: SO_ACCEPTCONN");
                return 1;
        }
        conn = listening ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : lfd;
        if (conn < 0) {
                perror("fake-qemu: accept");
                return 1;
        }
        writef("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"fake\"}, "
               "\"capabilities\": [\"oob\"]}}\r\n");

        for (;;) {
                struct pollfd pfd = { .fd = conn, .events = POLLIN };
                char *nl;
                ssize_t k;

                if (!garbage_done && exists("garbage-go")) {
                        write_long_line(NULL);
                        touch("garbage-sent");
                        garbage_done = true;
                }
                if (!storm_done && exists("storm-go")) {
                        for (unsigned i = 0; i < STORM_EVENTS; i++)
                                writef("{\"timestamp\": {\"seconds\": 1, \"microseconds\": %u}, \"event\": \"STORM\", "
                                       "\"data\": {\"i\": %u}}\r\n", i % 1000000U, i);
                        touch("storm-sent");
                        storm_done = true;
                }
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                k = read(conn, in + in_len, sizeof in - in_len);
                if (k <= 0)
                        return 0;
                in_len += (size_t) k;
                /* One command at a time, in order, as QEMU. */
                while ((nl = memchr(in, '\n', in_len))) {
                        size_t len = (size_t) (nl - in);
                        handle(in, len);
                        memmove(in, nl + 1, in_len - len - 1);
                        in_len -= len + 1;
                }
                if (in_len == sizeof in)
                        in_len = 0; /* nothing the supervisor sends is this long */
        }
}
