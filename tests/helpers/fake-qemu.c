/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A stand-in for qemu-system-x86_64 that speaks just enough QMP for vmsupd, and
 * misbehaves on cue. Used as a definition's "binary".
 *
 * It takes QEMU's command line, finds the monitor's descriptor (connected, or a listener) in
 * "-chardev socket,id=vmsup-qmp,fd=N,...", greets, accepts qmp_capabilities, and
 * answers in order, one command at a time like QEMU: cont (and a RESUME event),
 * stop (STOP), query-status (running or paused, as cont and stop left it), quit
 * (then exits); {} for anything else. Every command line read is appended to
 * DIR/received.
 *
 * "-fake-greeting nocaps" sends a greeting without its "capabilities" member.
 *
 * Cues, from extra arguments "-fake-dir DIR" and "-fake-late NAME":
 *  - the command NAME is answered only once DIR/late-go exists, with a reply
 *    line of 17 MiB (over the supervisor's 16 MiB limit); then DIR/late-sent
 *    is created and the commands that queued meanwhile are answered;
 *  - once DIR/garbage-go exists, a 17 MiB line is sent although nothing was
 *    asked (a broken stream), then DIR/garbage-sent is created;
 *  - once DIR/storm-go exists, STORM_EVENTS events named STORM with data {"i":N}
 *    (N from 0) are sent as fast as the supervisor reads them, then DIR/storm-sent is
 *    created;
 *  - once DIR/inject exists, its bytes (anything: binary, NUL bytes, lines) are sent as
 *    they are, at once, DIR/inject is removed and DIR/inject-sent created;
 *  - the same for DIR/inject-reply, but just before the next reply (between a command
 *    and its answer, when a request is pending);
 *  - once DIR/dup-go exists, the next reply to query-status is remembered, and sent
 *    again (the same id, the same text) just before the reply to the query-status after
 *    it; then DIR/dup-sent is created;
 *  - once DIR/endless-go exists, the next reply is preceded by a line of
 *    ENDLESS_MIB MiB (from "-fake-endless-mib N", 300 by default) that ends only
 *    after all of it, then DIR/endless-sent is created;
 *  - once DIR/close-go exists, the next command gets half a reply and the fake
 *    exits (closing the socket mid-reply). */

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
static bool running = true;
static unsigned endless_mib = 300;
static char *dup_line; /* a query-status reply to send again */
static bool dup_armed;

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

/* Sends DIR/NAME's bytes and creates DIR/NAME-sent. The file is removed as soon as it is
 * open: the supervisor may kill this process the moment the bytes arrive, and a file left
 * behind would be sent again by the next fake QEMU, at its start. */
static bool inject_file(const char *name) {
        char path[4096], sent[4200], buf[65536];
        ssize_t k;
        int fd;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        unlink(path);
        while ((k = read(fd, buf, sizeof buf)) > 0)
                write_all(buf, (size_t) k);
        close(fd);
        snprintf(sent, sizeof sent, "%s-sent", name);
        touch(sent);
        return true;
}

/* A line of endless_mib MiB: a reply whose string never seems to end. */
static void write_endless_line(void) {
        static const char head[] = "{\"return\": {\"pad\": \"";
        char *buf = malloc(1U << 20);

        if (!buf)
                exit(1);
        memset(buf, 'y', 1U << 20);
        write_all(head, sizeof head - 1);
        for (unsigned i = 0; i < endless_mib; i++)
                write_all(buf, 1U << 20);
        write_all("\"}}\r\n", 5);
        free(buf);
}

/* What comes before any reply, on cue. */
static void before_reply(void) {
        (void) inject_file("inject-reply");
        if (exists("endless-go") && !exists("endless-sent")) {
                write_endless_line();
                touch("endless-sent");
        }
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
        if (exists("close-go") && !exists("close-sent")) {
                /* Half a reply, and gone. */
                touch("close-sent");
                writef("{\"return\": {\"status\": \"runn");
                exit(0);
        }
        before_reply();
        if (!msg) {
                /* What QEMU says when its parser fails: no id. */
                writef("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n");
        } else if (late_name && strcmp(name, late_name) == 0) {
                wait_for("late-go");
                write_long_line(id ? id : "0");
                touch("late-sent");
        } else if (strcmp(name, "query-status") == 0) {
                char reply[256];

                snprintf(reply, sizeof reply,
                         "{\"return\": {\"status\": \"%s\", \"singlestep\": false, \"running\": %s}, \"id\": %s}\r\n",
                         running ? "running" : "paused", running ? "true" : "false", id ? id : "null");
                if (dup_line) {
                        /* The earlier reply again, its request long answered. */
                        write_all(dup_line, strlen(dup_line));
                        free(dup_line);
                        dup_line = NULL;
                        touch("dup-sent");
                } else if (!dup_armed && exists("dup-go")) {
                        dup_armed = true;
                        dup_line = strdup(reply);
                }
                write_all(reply, strlen(reply));
        } else {
                writef("{\"return\": {}, \"id\": %s}\r\n", id ? id : "null");
                if (strcmp(name, "cont") == 0) {
                        running = true;
                        event("RESUME");
                } else if (strcmp(name, "stop") == 0) {
                        running = false;
                        event("STOP");
                }
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
        bool garbage_done = false, storm_done = false, nocaps = false;
        int lfd = -1;

        for (int i = 1; i < argc; i++) {
                const char *p;
                if (strcmp(argv[i], "-fake-dir") == 0 && i + 1 < argc)
                        dir = argv[++i];
                else if (strcmp(argv[i], "-fake-late") == 0 && i + 1 < argc)
                        late_name = argv[++i];
                else if (strcmp(argv[i], "-fake-greeting") == 0 && i + 1 < argc)
                        nocaps = strcmp(argv[++i], "nocaps") == 0;
                else if (strcmp(argv[i], "-fake-endless-mib") == 0 && i + 1 < argc)
                        endless_mib = (unsigned) atoi(argv[++i]);
                else if (strcmp(argv[i], "-S") == 0)
                        running = false;
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
        if (nocaps)
                writef("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"fake\"}}}\r\n");
        else
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
                (void) inject_file("inject");
                if (exists("poweroff-go")) {
                        /* The guest powered off: QEMU's last words, then its end. */
                        writef("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"SHUTDOWN\", "
                               "\"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n");
                        return 0;
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
