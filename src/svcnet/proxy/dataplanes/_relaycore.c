/*
 * svcnet.proxy.dataplanes._relaycore: the userspace dataplane's TCP relay loop in C.
 *
 * Why C: bench/proxy measured the pure-Python relay (svcnet/proxy/dataplanes/_pyrelay.py)
 * at 0.88-0.90x haproxy's keep-alive rate. Its kernel time and syscalls per request equal
 * haproxy's (7.5 vs 7.3 us, 2 recvfrom + 2 sendto); the gap is interpreter time, 1.96 us
 * of user CPU per request against haproxy's 0.95, and a Python path stripped to a bare
 * recv and send still cost 1.78 us. Here an established connection's bytes never reach
 * Python: one Python call handles a whole batch of epoll events.
 *
 * The contract is the one _pyrelay.py implements and documents (read that first); the
 * two are tested against each other by tests/proxy/test_relaycore.py.
 *
 *   Counters          bytes_in / bytes_out, read-write unsigned 64-bit integers.
 *   Relay()           an epoll set (EPOLL_CLOEXEC).
 *     fileno()
 *     register(fd, mask) / unregister(fd)
 *                     descriptors whose events poll() hands back to Python.
 *     pair(client, server, counters, owner, client_events, server_events) -> Pair
 *                     both sockets' descriptors (already registered, edge-triggered) are relayed
 *                     here from now on; the events given are those Python saw on them
 *                     and did not handle yet.
 *     poll()          epoll_wait without blocking; relays paired descriptors and returns
 *                     [(fd, events)] of the others.
 *     handle(fd, events) -> bool
 *                     act on an event poll() returned for fd before fd was paired (in
 *                     the same batch); False if fd is in no active pair.
 *     take_finished() -> [Pair] pairs that ended since the last call.
 *     discard(pair)   stop relaying a pair now (it is not reported as finished).
 *     close()
 *   Pair              owner, reset (ended by an error or reset), active, buffered().
 *
 * Descriptors are never closed or unregistered here: the owner closes both sockets of an
 * ended pair (closing removes them from the epoll set). Events that arrive for them
 * before that are handed to Python like any unpaired descriptor's.
 *
 * Not thread-safe: everything runs with the GIL held, on the event loop's thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* One recv() reads at most this much; also the most a direction keeps while its
 * destination is full (as in _pyrelay.READ_SIZE). */
#define READ_SIZE 65536
#define MAX_EVENTS 512

#define READABLE (EPOLLIN | EPOLLRDHUP | EPOLLHUP)
/* A read stops at an EOF or the urgent mark, so such events are read until EAGAIN. */
#define ENDED (EPOLLRDHUP | EPOLLHUP | EPOLLPRI)

/* ---- Counters ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    unsigned long long bytes_in;
    unsigned long long bytes_out;
} CountersObject;

static PyMemberDef Counters_members[] = {
    {"bytes_in", T_ULONGLONG, offsetof(CountersObject, bytes_in), 0,
     "Bytes relayed from clients to the endpoint."},
    {"bytes_out", T_ULONGLONG, offsetof(CountersObject, bytes_out), 0,
     "Bytes relayed from the endpoint back to clients."},
    {NULL}
};

static PyTypeObject CountersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "svcnet.proxy.dataplanes._relaycore.Counters",
    .tp_basicsize = sizeof(CountersObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Byte counters of one endpoint, added to by the relay.",
    .tp_members = Counters_members,
    .tp_new = PyType_GenericNew,
};

/* ---- Pair ---------------------------------------------------------------------------- */

typedef struct {
    int fd;
    int eof;          /* recv() on this socket returned 0 */
    char *backlog;    /* bytes read from the peer that this socket could not take yet */
    size_t off, len;  /* backlog[off:len] is still to be written */
} Side;

enum { ACTIVE = 0, ENDED_CLEAN = 1, ENDED_RESET = 2, DISCARDED = 3 };

typedef struct PairObject {
    PyObject_HEAD
    Side client, server;
    CountersObject *counters;
    PyObject *owner;
    int state;
} PairObject;

static int Pair_traverse(PairObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->owner);
    Py_VISIT((PyObject *)self->counters);
    return 0;
}

static int Pair_clear(PairObject *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->counters);
    return 0;
}

static void free_backlogs(PairObject *p) {
    free(p->client.backlog);
    free(p->server.backlog);
    p->client.backlog = p->server.backlog = NULL;
    p->client.off = p->client.len = p->server.off = p->server.len = 0;
}

static void Pair_dealloc(PairObject *self) {
    PyObject_GC_UnTrack(self);
    Pair_clear(self);
    free_backlogs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Pair_buffered(PairObject *self, PyObject *Py_UNUSED(ignored)) {
    size_t n = (self->client.len - self->client.off) + (self->server.len - self->server.off);
    return PyLong_FromSize_t(n);
}

static PyObject *Pair_get_reset(PairObject *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->state == ENDED_RESET);
}

static PyObject *Pair_get_active(PairObject *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->state == ACTIVE);
}

static PyObject *Pair_get_owner(PairObject *self, void *Py_UNUSED(closure)) {
    if (self->owner == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(self->owner);
}

static PyMethodDef Pair_methods[] = {
    {"buffered", (PyCFunction)Pair_buffered, METH_NOARGS,
     "Bytes held for this pair (both directions)."},
    {NULL}
};

static PyGetSetDef Pair_getset[] = {
    {"reset", (getter)Pair_get_reset, NULL, "Ended by an error or a reset.", NULL},
    {"active", (getter)Pair_get_active, NULL, "Still relayed.", NULL},
    {"owner", (getter)Pair_get_owner, NULL, "The object given to Relay.pair().", NULL},
    {NULL}
};

static PyTypeObject PairType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "svcnet.proxy.dataplanes._relaycore.Pair",
    .tp_basicsize = sizeof(PairObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A client socket and its endpoint socket relayed by a Relay.",
    .tp_traverse = (traverseproc)Pair_traverse,
    .tp_clear = (inquiry)Pair_clear,
    .tp_dealloc = (destructor)Pair_dealloc,
    .tp_methods = Pair_methods,
    .tp_getset = Pair_getset,
};

/* ---- Relay --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int epfd;
    PairObject **by_fd;  /* fd -> active pair relaying it (a strong reference per pair,
                            held through its client descriptor's slot) */
    size_t by_fd_len;
    PyObject *finished;  /* list of ended pairs not yet taken */
    char *scratch;
    struct epoll_event events[MAX_EVENTS];
} RelayObject;

static int Relay_check(RelayObject *self) {
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed relay");
        return -1;
    }
    return 0;
}

/* As select.epoll: a negative descriptor is a ValueError. */
static int check_fd(int fd) {
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "file descriptor cannot be a negative integer (%d)",
                     fd);
        return -1;
    }
    return 0;
}

static int grow_table(RelayObject *self, int fd) {
    size_t need = (size_t)fd + 1;
    if (need <= self->by_fd_len)
        return 0;
    size_t len = self->by_fd_len ? self->by_fd_len : 1024;
    while (len < need)
        len *= 2;
    PairObject **table = realloc(self->by_fd, len * sizeof(*table));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(table + self->by_fd_len, 0, (len - self->by_fd_len) * sizeof(*table));
    self->by_fd = table;
    self->by_fd_len = len;
    return 0;
}

/* The pair stops being relayed; ``how`` is ENDED_CLEAN, ENDED_RESET or DISCARDED. The
 * relay's reference moves to the finished list (or is dropped when discarded). */
static void end_pair(RelayObject *self, PairObject *p, int how) {
    if (p->state != ACTIVE)
        return;
    p->state = how;
    self->by_fd[p->client.fd] = NULL;
    self->by_fd[p->server.fd] = NULL;
    free_backlogs(p);
    if (how != DISCARDED && PyList_Append(self->finished, (PyObject *)p) < 0) {
        /* Out of memory: the owner never hears of the end; it still holds the sockets
         * and closes them when its frontend goes. Nothing else to do here. */
        PyErr_Clear();
    }
    Py_DECREF(p);
}

static inline Side *peer_of(PairObject *p, Side *s) {
    return s == &p->client ? &p->server : &p->client;
}

static int keep_backlog(RelayObject *self, PairObject *p, Side *dst, const char *data,
                        size_t n) {
    char *buf = malloc(n);
    if (buf == NULL) {
        end_pair(self, p, ENDED_RESET);
        return -1;
    }
    memcpy(buf, data, n);
    dst->backlog = buf;
    dst->off = 0;
    dst->len = n;
    return 0;
}

/* ``src`` reached EOF and everything read from it was written: end the other socket's
 * sending side, or end the pair when the other direction ended too. */
static void direction_ended(RelayObject *self, PairObject *p, Side *src) {
    Side *dst = peer_of(p, src);
    if (dst->eof && src->backlog == NULL) {
        end_pair(self, p, ENDED_CLEAN);
        return;
    }
    if (shutdown(dst->fd, SHUT_WR) < 0)
        end_pair(self, p, ENDED_RESET);
}

/* Read ``src`` and write to its peer until ``src`` is empty (a short read, or EAGAIN
 * when ``drain``), the peer is full, or EOF. */
static void pump(RelayObject *self, PairObject *p, Side *src, int drain) {
    Side *dst = peer_of(p, src);
    char *buf = self->scratch;
    int from_client = src == &p->client;
    for (;;) {
        ssize_t n = recv(src->fd, buf, READ_SIZE, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            end_pair(self, p, ENDED_RESET);
            return;
        }
        if (n == 0) {
            src->eof = 1;
            if (dst->backlog == NULL)
                direction_ended(self, p, src);
            return;
        }
        if (from_client)
            p->counters->bytes_in += (unsigned long long)n;
        else
            p->counters->bytes_out += (unsigned long long)n;
        ssize_t sent;
        do {
            sent = send(dst->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                end_pair(self, p, ENDED_RESET);
                return;
            }
            sent = 0;
        }
        if (sent < n) {
            keep_backlog(self, p, dst, buf + sent, (size_t)(n - sent));
            return;
        }
        if (n < READ_SIZE && !drain)
            return;  /* a short read emptied the socket; more data is a new edge */
    }
}

/* Write ``dst``'s backlog; once it is all written, read the peer again (or pass its EOF
 * on). */
static void flush(RelayObject *self, PairObject *p, Side *dst) {
    ssize_t sent;
    do {
        sent = send(dst->fd, dst->backlog + dst->off, dst->len - dst->off,
                    MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            end_pair(self, p, ENDED_RESET);
        return;
    }
    dst->off += (size_t)sent;
    if (dst->off < dst->len)
        return;
    free(dst->backlog);
    dst->backlog = NULL;
    dst->off = dst->len = 0;
    Side *src = peer_of(p, dst);
    if (src->eof)
        direction_ended(self, p, src);
    else
        pump(self, p, src, 1);
}

static void on_event(RelayObject *self, PairObject *p, Side *s, uint32_t events) {
    if (events & EPOLLERR) {
        end_pair(self, p, ENDED_RESET);
        return;
    }
    if (s->backlog != NULL && (events & EPOLLOUT)) {
        flush(self, p, s);
        if (p->state != ACTIVE)
            return;
    }
    if ((events & READABLE) && !s->eof && peer_of(p, s)->backlog == NULL)
        pump(self, p, s, (events & ENDED) != 0);
}

static PyObject *Relay_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Relay", kwlist))
        return NULL;
    RelayObject *self = (RelayObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->epfd = -1;
    self->finished = PyList_New(0);
    self->scratch = malloc(READ_SIZE);
    if (self->finished == NULL || self->scratch == NULL) {
        if (self->scratch == NULL)
            PyErr_NoMemory();
        Py_DECREF(self);
        return NULL;
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* Drop every active pair (as discarded) and close the epoll set. */
static void Relay_release(RelayObject *self) {
    for (size_t fd = 0; fd < self->by_fd_len; fd++) {
        PairObject *p = self->by_fd[fd];
        if (p != NULL && p->client.fd == (int)fd)
            end_pair(self, p, DISCARDED);
    }
    free(self->by_fd);
    self->by_fd = NULL;
    self->by_fd_len = 0;
    if (self->epfd >= 0) {
        close(self->epfd);
        self->epfd = -1;
    }
}

static int Relay_traverse(RelayObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->finished);
    for (size_t fd = 0; fd < self->by_fd_len; fd++) {
        PairObject *p = self->by_fd[fd];
        if (p != NULL && p->client.fd == (int)fd)
            Py_VISIT((PyObject *)p);
    }
    return 0;
}

static int Relay_clear(RelayObject *self) {
    Relay_release(self);
    Py_CLEAR(self->finished);
    return 0;
}

static void Relay_dealloc(RelayObject *self) {
    PyObject_GC_UnTrack(self);
    Relay_clear(self);
    free(self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Relay_fileno(RelayObject *self, PyObject *Py_UNUSED(ignored)) {
    if (Relay_check(self) < 0)
        return NULL;
    return PyLong_FromLong(self->epfd);
}

static PyObject *Relay_close(RelayObject *self, PyObject *Py_UNUSED(ignored)) {
    Relay_release(self);
    Py_RETURN_NONE;
}

static PyObject *Relay_register(RelayObject *self, PyObject *args) {
    int fd;
    unsigned int mask;
    if (!PyArg_ParseTuple(args, "iI:register", &fd, &mask))
        return NULL;
    if (Relay_check(self) < 0 || check_fd(fd) < 0)
        return NULL;
    struct epoll_event ev = {.events = mask, .data.fd = fd};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *Relay_unregister(RelayObject *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i:unregister", &fd))
        return NULL;
    if (Relay_check(self) < 0 || check_fd(fd) < 0)
        return NULL;
    if ((size_t)fd < self->by_fd_len && self->by_fd[fd] != NULL) {
        PyErr_SetString(PyExc_ValueError, "descriptor belongs to an active pair");
        return NULL;
    }
    if (epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *Relay_pair(RelayObject *self, PyObject *args) {
    PyObject *client, *server, *counters, *owner;
    unsigned int client_events, server_events;
    if (!PyArg_ParseTuple(args, "OOO!OII:pair", &client, &server, &CountersType,
                          &counters, &owner, &client_events, &server_events))
        return NULL;
    if (Relay_check(self) < 0)
        return NULL;
    int cfd = PyObject_AsFileDescriptor(client);
    if (cfd < 0 && PyErr_Occurred())
        return NULL;
    int sfd = PyObject_AsFileDescriptor(server);
    if (sfd < 0 && PyErr_Occurred())
        return NULL;
    if (cfd < 0 || sfd < 0 || cfd == sfd) {
        PyErr_SetString(PyExc_ValueError, "two distinct open descriptors are needed");
        return NULL;
    }
    if (grow_table(self, cfd > sfd ? cfd : sfd) < 0)
        return NULL;
    if (self->by_fd[cfd] != NULL || self->by_fd[sfd] != NULL) {
        PyErr_SetString(PyExc_ValueError, "descriptor already paired");
        return NULL;
    }
    PairObject *p = PyObject_GC_New(PairObject, &PairType);
    if (p == NULL)
        return NULL;
    memset(&p->client, 0, sizeof(p->client));
    memset(&p->server, 0, sizeof(p->server));
    p->client.fd = cfd;
    p->server.fd = sfd;
    p->counters = (CountersObject *)Py_NewRef(counters);
    p->owner = Py_NewRef(owner);
    p->state = ACTIVE;
    PyObject_GC_Track(p);
    /* The table's reference (one per pair); end_pair drops or moves it. */
    self->by_fd[cfd] = self->by_fd[sfd] = (PairObject *)Py_NewRef(p);
    if (client_events & READABLE)
        pump(self, p, &p->client, (client_events & ENDED) != 0);
    if (p->state == ACTIVE && (server_events & READABLE) && p->client.backlog == NULL)
        pump(self, p, &p->server, (server_events & ENDED) != 0);
    return (PyObject *)p;
}

static PyObject *Relay_poll(RelayObject *self, PyObject *Py_UNUSED(ignored)) {
    if (Relay_check(self) < 0)
        return NULL;
    int n;
    do {
        n = epoll_wait(self->epfd, self->events, MAX_EVENTS, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *others = PyList_New(0);
    if (others == NULL)
        return NULL;
    /* Keep every pair met in this batch alive until the batch ends: a pair ended by one
     * event may still be named by a later one (it is then inactive and skipped). */
    for (int i = 0; i < n; i++) {
        int fd = self->events[i].data.fd;
        uint32_t events = self->events[i].events;
        PairObject *p = (size_t)fd < self->by_fd_len ? self->by_fd[fd] : NULL;
        if (p != NULL) {
            Py_INCREF(p);
            on_event(self, p, fd == p->client.fd ? &p->client : &p->server, events);
            Py_DECREF(p);  /* the finished list or the table still holds it */
            continue;
        }
        PyObject *item = Py_BuildValue("(iI)", fd, events);
        if (item == NULL || PyList_Append(others, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(others);
            return NULL;
        }
        Py_DECREF(item);
    }
    return others;
}

static PyObject *Relay_handle(RelayObject *self, PyObject *args) {
    int fd;
    unsigned int events;
    if (!PyArg_ParseTuple(args, "iI:handle", &fd, &events))
        return NULL;
    if (Relay_check(self) < 0)
        return NULL;
    PairObject *p = fd >= 0 && (size_t)fd < self->by_fd_len ? self->by_fd[fd] : NULL;
    if (p != NULL) {
        Py_INCREF(p);
        on_event(self, p, fd == p->client.fd ? &p->client : &p->server, events);
        Py_DECREF(p);
    }
    return PyBool_FromLong(p != NULL);
}

static PyObject *Relay_take_finished(RelayObject *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *done = self->finished;
    if (done == NULL)
        return PyList_New(0);
    if (PyList_GET_SIZE(done) == 0)
        return PyList_New(0);
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    self->finished = fresh;
    return done;
}

static PyObject *Relay_discard(RelayObject *self, PyObject *arg) {
    if (!PyObject_TypeCheck(arg, &PairType)) {
        PyErr_SetString(PyExc_TypeError, "discard() takes a Pair");
        return NULL;
    }
    PairObject *p = (PairObject *)arg;
    if (p->state == ACTIVE && (size_t)p->client.fd < self->by_fd_len
            && self->by_fd[p->client.fd] == p)
        end_pair(self, p, DISCARDED);
    Py_RETURN_NONE;
}

static PyMethodDef Relay_methods[] = {
    {"fileno", (PyCFunction)Relay_fileno, METH_NOARGS, "The epoll set's descriptor."},
    {"close", (PyCFunction)Relay_close, METH_NOARGS,
     "Discard every active pair and close the epoll set."},
    {"register", (PyCFunction)Relay_register, METH_VARARGS,
     "register(fd, mask): watch fd; its events are returned by poll()."},
    {"unregister", (PyCFunction)Relay_unregister, METH_VARARGS,
     "unregister(fd): stop watching an unpaired fd."},
    {"pair", (PyCFunction)Relay_pair, METH_VARARGS,
     "pair(client, server, counters, owner, client_events, server_events) -> Pair"},
    {"poll", (PyCFunction)Relay_poll, METH_NOARGS,
     "Handle ready events without blocking; return [(fd, events)] of unpaired fds."},
    {"handle", (PyCFunction)Relay_handle, METH_VARARGS,
     "handle(fd, events) -> bool: relay an event poll() returned for fd before fd was "
     "paired (same batch); False if fd is not in an active pair."},
    {"take_finished", (PyCFunction)Relay_take_finished, METH_NOARGS,
     "Pairs that ended since the last call."},
    {"discard", (PyCFunction)Relay_discard, METH_O,
     "discard(pair): stop relaying pair; it is not reported as finished."},
    {NULL}
};

static PyTypeObject RelayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "svcnet.proxy.dataplanes._relaycore.Relay",
    .tp_basicsize = sizeof(RelayObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An epoll set whose paired sockets are relayed in C (see the module doc).",
    .tp_traverse = (traverseproc)Relay_traverse,
    .tp_clear = (inquiry)Relay_clear,
    .tp_dealloc = (destructor)Relay_dealloc,
    .tp_methods = Relay_methods,
    .tp_new = Relay_new,
};

/* ---- module -------------------------------------------------------------------------- */

static struct PyModuleDef relaycore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "svcnet.proxy.dataplanes._relaycore",
    .m_doc = "TCP relaying of established connection pairs in C (see _pyrelay.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__relaycore(void) {
    if (PyType_Ready(&CountersType) < 0 || PyType_Ready(&PairType) < 0
            || PyType_Ready(&RelayType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&relaycore_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "READ_SIZE", READ_SIZE) < 0
            || PyModule_AddObjectRef(m, "Counters", (PyObject *)&CountersType) < 0
            || PyModule_AddObjectRef(m, "Pair", (PyObject *)&PairType) < 0
            || PyModule_AddObjectRef(m, "Relay", (PyObject *)&RelayType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
