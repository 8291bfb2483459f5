/* A stand-in for systemd-logind on a private bus, for test_daemon_logind: owns
 * org.freedesktop.login1 on the bus named by DBUS_SYSTEM_BUS_ADDRESS, answers
 * Manager.ListSessions and the properties of each session (Id, Name, User as uid, State,
 * Class), and emits the Manager's signals when told to.
 *
 * Driven by lines on stdin, each answered by one line on stdout once its signals are written
 * to the bus:
 *   new ID UID CLASS   a session in state "active"; emits SessionNew   -> ok
 *   close ID           the session turns "closing"; emits nothing (as logind) -> ok
 *   remove ID          the session goes; emits SessionRemoved         -> ok
 *   userremoved UID    emits UserRemoved                              -> ok
 *   stats              -> "lists=N gets=M" (ListSessions calls; session property reads)
 * "ready" is printed once the name is owned; end of stdin ends the program. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#define MAX_SESSIONS   16
#define SESSION_PREFIX "/org/freedesktop/login1/session"

struct session {
    char id[32];
    char path[128];
    uint32_t uid;
    char cls[32];
    char state[16];
    bool used;
};

static struct session sessions[MAX_SESSIONS];
static sd_bus *bus;
static unsigned lists, gets;
static char line[512];
static size_t line_len;

static struct session *find_by_id(const char *id)
{
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (sessions[i].used && strcmp(sessions[i].id, id) == 0)
            return &sessions[i];
    return NULL;
}

static int list_sessions(sd_bus_message *m, void *ud, sd_bus_error *ret_error)
{
    sd_bus_message *reply = NULL;
    (void)ud;
    (void)ret_error;
    lists++;
    int r = sd_bus_message_new_method_return(m, &reply);
    if (r >= 0)
        r = sd_bus_message_open_container(reply, 'a', "(susso)");
    for (int i = 0; r >= 0 && i < MAX_SESSIONS; i++)
        if (sessions[i].used)
            r = sd_bus_message_append(reply, "(susso)", sessions[i].id, sessions[i].uid, "user", "",
                                      sessions[i].path);
    if (r >= 0)
        r = sd_bus_message_close_container(reply);
    if (r >= 0)
        r = sd_bus_send(NULL, reply, NULL);
    sd_bus_message_unref(reply);
    return r;
}

static const sd_bus_vtable manager_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("ListSessions", "", "a(susso)", list_sessions, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL("SessionNew", "so", 0),
    SD_BUS_SIGNAL("SessionRemoved", "so", 0),
    SD_BUS_SIGNAL("UserRemoved", "uo", 0),
    SD_BUS_VTABLE_END,
};

static int find_session(sd_bus *b, const char *path, const char *iface, void *ud, void **found,
                        sd_bus_error *ret_error)
{
    (void)b;
    (void)iface;
    (void)ud;
    (void)ret_error;
    for (int i = 0; i < MAX_SESSIONS; i++) {
        if (sessions[i].used && strcmp(sessions[i].path, path) == 0) {
            *found = &sessions[i];
            return 1;
        }
    }
    return 0;
}

static int get_string(sd_bus *b, const char *path, const char *iface, const char *property,
                      sd_bus_message *reply, void *ud, sd_bus_error *ret_error)
{
    struct session *s = ud;
    (void)b;
    (void)path;
    (void)iface;
    (void)ret_error;
    if (strcmp(property, "State") == 0) {
        gets++; /* once per GetAll */
        return sd_bus_message_append(reply, "s", s->state);
    }
    if (strcmp(property, "Class") == 0)
        return sd_bus_message_append(reply, "s", s->cls);
    return sd_bus_message_append(reply, "s", s->id);
}

static int get_user(sd_bus *b, const char *path, const char *iface, const char *property,
                    sd_bus_message *reply, void *ud, sd_bus_error *ret_error)
{
    struct session *s = ud;
    char user_path[64];
    (void)b;
    (void)path;
    (void)iface;
    (void)property;
    (void)ret_error;
    snprintf(user_path, sizeof(user_path), "/org/freedesktop/login1/user/_%u", s->uid);
    return sd_bus_message_append(reply, "(uo)", s->uid, user_path);
}

static const sd_bus_vtable session_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Id", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("User", "(uo)", get_user, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Class", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("State", "s", get_string, 0, 0),
    SD_BUS_VTABLE_END,
};

static void answer(const char *text)
{
    sd_bus_flush(bus); /* the signals are on the bus before the test hears back */
    printf("%s\n", text);
    fflush(stdout);
}

static void run_command(char *cmd)
{
    char id[32], cls[32];
    unsigned uid;
    struct session *s;
    if (sscanf(cmd, "new %31s %u %31s", id, &uid, cls) == 3) {
        for (int i = 0; i < MAX_SESSIONS; i++) {
            if (sessions[i].used)
                continue;
            s = &sessions[i];
            memset(s, 0, sizeof(*s));
            snprintf(s->id, sizeof(s->id), "%s", id);
            snprintf(s->cls, sizeof(s->cls), "%s", cls);
            snprintf(s->state, sizeof(s->state), "active");
            s->uid = uid;
            char *path = NULL;
            if (sd_bus_path_encode(SESSION_PREFIX, id, &path) < 0)
                break;
            snprintf(s->path, sizeof(s->path), "%s", path);
            free(path);
            s->used = true;
            sd_bus_emit_signal(bus, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                               "SessionNew", "so", s->id, s->path);
            answer("ok");
            return;
        }
        answer("error no room");
    } else if (sscanf(cmd, "close %31s", id) == 1 && (s = find_by_id(id))) {
        snprintf(s->state, sizeof(s->state), "closing");
        answer("ok");
    } else if (sscanf(cmd, "remove %31s", id) == 1 && (s = find_by_id(id))) {
        s->used = false;
        sd_bus_emit_signal(bus, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                           "SessionRemoved", "so", s->id, s->path);
        answer("ok");
    } else if (sscanf(cmd, "userremoved %u", &uid) == 1) {
        char user_path[64];
        snprintf(user_path, sizeof(user_path), "/org/freedesktop/login1/user/_%u", uid);
        sd_bus_emit_signal(bus, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                           "UserRemoved", "uo", uid, user_path);
        answer("ok");
    } else if (strcmp(cmd, "stats") == 0) {
        char text[64];
        snprintf(text, sizeof(text), "lists=%u gets=%u", lists, gets);
        answer(text);
    } else {
        answer("error unknown command");
    }
}

static int on_stdin(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
    (void)revents;
    (void)ud;
    ssize_t n = read(fd, line + line_len, sizeof(line) - 1 - line_len);
    if (n <= 0)
        return sd_event_exit(sd_event_source_get_event(src), 0);
    line_len += (size_t)n;
    line[line_len] = '\0';
    char *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        run_command(line);
        line_len -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, line_len + 1);
    }
    if (line_len == sizeof(line) - 1)
        line_len = 0; /* a line too long: dropped */
    return 0;
}

int main(void)
{
    sd_event *ev = NULL;
    int r = sd_event_default(&ev);
    if (r >= 0)
        r = sd_bus_open_system(&bus);
    if (r >= 0)
        r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/login1",
                                     "org.freedesktop.login1.Manager", manager_vtable, NULL);
    if (r >= 0)
        r = sd_bus_add_fallback_vtable(bus, NULL, SESSION_PREFIX, "org.freedesktop.login1.Session",
                                       session_vtable, find_session, NULL);
    if (r >= 0)
        r = sd_bus_request_name(bus, "org.freedesktop.login1", 0);
    if (r >= 0)
        r = sd_bus_attach_event(bus, ev, 0);
    if (r >= 0)
        r = sd_event_add_io(ev, NULL, STDIN_FILENO, EPOLLIN, on_stdin, NULL);
    if (r < 0) {
        fprintf(stderr, "fake_logind: %s\n", strerror(-r));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    r = sd_event_loop(ev);
    sd_bus_flush_close_unref(bus);
    sd_event_unref(ev);
    return r < 0 ? 1 : 0;
}
