/* Chaos over every family ipcshim serves: `chaos SECONDS SEED DIR`.
 *
 * A supervisor keeps 48 workers running for SECONDS: 20 channels of a writer and a reader
 * (an anonymous pipe, a FIFO, an AF_UNIX stream connection by name, a seqpacket socketpair
 * passing a pipe with SCM_RIGHTS every fourth record, a named datagram socket, a message
 * queue type; stream readers wait in epoll), 4 semaphore workers (a mutex taken with
 * SEM_UNDO, SEM_UNDO operations, operations counted in a witness semaphore in the same
 * semop) and 4 shared memory workers (a counter in a segment). Every few milliseconds it
 * SIGKILLs, SIGSTOPs (and SIGCONTs a little later) or asks to exit a random worker, and
 * replaces what ended; one message queue pair is left alone, so that its channel outlives
 * hundreds of newer ones (each pair's channel state is its own). Stops and continues are sent by a helper forked first that makes no
 * IPC call: a worker stopped inside a call holds the namespace's lock under the shim (SIGSTOP
 * cannot be held off), and the supervisor, which may wait for that lock, must not be the one
 * that continues it. Then it stops, lets everything finish and checks:
 *   - each channel's reader got the records in order, none twice, none torn, and all the
 *     writer was told were sent (plus at most the one in flight when a writer was killed)
 *     whenever the reader read to the end (a message queue reader ends only at its own whole
 *     end marker or at ENOMSG twice after its writer ended: any other errno fails);
 *   - a reader saw the end, a writer its reader gone, and a waiter got a mutex whose holder
 *     was killed, within a second of the death (not counting the time the survivor waited for
 *     a CPU, from /proc/PID/schedstat: the machine may be busy);
 *   - every data semaphore equals its start plus the operations its witnesses counted (all
 *     SEM_UNDO ones undone, killed processes' included); the segment's counter equals the
 *     increments acknowledged, plus at most one per killed worker;
 *   - nobody stayed blocked once told to stop.
 * Prints "ok ..." with counts, or "FAIL ..." and exits 1. Run under ipcshim, or on the kernel. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 48
#define PAIRS 20
#define SEM_WORKERS 4
#define NDATA 4
#define RECORD 32
/* The pair left alone (its first channel is a message queue's, kind MSGQ): its channel lives
 * through the whole run, while hundreds of newer ones come and go. */
#define SPARED MSGQ
#define MAGIC 0x6368616f73ULL
#define SEC 1000000000LL
#define LATENCY_MAX SEC

enum kind { PIPE, FIFO, STREAM, SEQPACKET, DGRAM, MSGQ, KINDS };
static const char *kind_name[] = { "pipe", "fifo", "stream", "seqpacket", "dgram", "msgq" };
enum role { NONE, WRITER, READER, SEMW, SHMW };
enum end { RUNNING, DONE, KILLED };

struct chan {
	int kind;
	long id;
	volatile long acked, received;
	volatile int writer, reader;	/* enum end */
	volatile int ready;		/* a named reader is bound */
	volatile int eof;		/* the reader read to the end */
	volatile int marker;		/* a message queue reader saw the end marker */
	volatile long long writer_gone, reader_gone;
	/* The other end's time waiting for a CPU (schedstat) when each went. */
	volatile long long writer_gone_delay, reader_gone_delay;
	volatile int errors;
	char err[160];
};

struct slot {
	volatile pid_t pid;
	int role, chan;
	volatile int exit_req;
	/* A stop asked of the helper (ns), and the helper's own state of it. */
	volatile long long stop_req;
	volatile pid_t stopped;
	long long stop_until;
};

struct ctl {
	volatile int stop, helper_exit;
	struct slot slot[SLOTS];
	/* Each pair's channel: made again only once both its workers were reaped. */
	struct chan chan[PAIRS];
	volatile long long deaths[4096][2];	/* pid, time of its kill or exit */
	volatile pid_t mutex_pid;
	/* The last semaphore worker killed, and each slot's CPU wait time then. */
	volatile pid_t sem_killed;
	volatile long long sem_kill_delay[SLOTS];
	volatile long shm_acked;
	volatile long long max_latency;
	volatile int failed;
	char fail[256];
	volatile long kills, stops, exits, chans, records, scm_fds, sem_ops, mutex_waits;
	volatile long shm_kills;
};

static struct ctl *ctl;
static int semid, msqid, shmid;
static const char *dir;
static int me;

static long long now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * SEC + t.tv_nsec;
}

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (__sync_bool_compare_and_swap(&ctl->failed, 0, 1))
		vsnprintf(ctl->fail, sizeof ctl->fail, fmt, ap);
	va_end(ap);
}

/* Time `pid` has spent runnable but waiting for a CPU (ns); 0 when unknown. */
static long long run_delay(pid_t pid)
{
	char path[64], buf[128];
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	long long run, wait;
	return sscanf(buf, "%lld %lld", &run, &wait) == 2 ? wait : 0;
}

static void note_death(pid_t pid, long long t)
{
	ctl->deaths[pid % 4096][1] = t;
	ctl->deaths[pid % 4096][0] = pid;
}

static long long death_of(pid_t pid)
{
	return ctl->deaths[pid % 4096][0] == pid ? ctl->deaths[pid % 4096][1] : 0;
}

/* How long after `gone` (0: not known) something was noticed, less the time we waited for a
 * CPU since then (`delay` was our wait time at `gone`). A message queue tells nobody of a
 * death (on the kernel neither): its ends learn it from the supervisor, and are not timed. */
static void latency(const char *what, long long gone, long long delay)
{
	int ch = ctl->slot[me].chan;
	if (!gone || (ctl->slot[me].role != SEMW && ctl->chan[ch].kind == MSGQ))
		return;
	long long waited = delay ? run_delay(getpid()) - delay : 0;
	long long l = now() - gone - (waited > 0 ? waited : 0);
	if (l > ctl->max_latency)
		ctl->max_latency = l;
	if (l > LATENCY_MAX)
		fail("%s noticed a dead peer after %lld ms (%s chan %ld)", what, l / 1000000,
		     ctl->slot[me].role == SEMW ? "mutex" : kind_name[ctl->chan[ch].kind], ctl->chan[ch].id);
}

/* The other end of our channel's pair. */
static pid_t partner(void)
{
	return ctl->slot[me ^ 1].pid;
}

static void path_of(char *buf, size_t n, const char *what, long id)
{
	snprintf(buf, n, "%s/%s.%ld", dir, what, id);
}

static void make_record(unsigned char *r, long id, long seq)
{
	uint64_t v[4] = { id, seq, (uint64_t)seq * 0x9e3779b97f4a7c15ULL ^ id, MAGIC };
	memcpy(r, v, RECORD);
}

/* The reader's check of record `r`: the next in order, whole. */
static int check_record(struct chan *c, const unsigned char *r)
{
	uint64_t v[4];
	memcpy(v, r, RECORD);
	if (v[0] != (uint64_t)c->id || v[3] != MAGIC || v[2] != (v[1] * 0x9e3779b97f4a7c15ULL ^ v[0])) {
		c->errors++;
		snprintf(c->err, sizeof c->err, "%s chan %ld: torn or foreign record", kind_name[c->kind], c->id);
		return -1;
	}
	if ((long)v[1] != c->received) {
		c->errors++;
		snprintf(c->err, sizeof c->err, "%s chan %ld: record %ld where %ld was due", kind_name[c->kind],
			 c->id, (long)v[1], c->received);
		return -1;
	}
	c->received++;
	__sync_fetch_and_add(&ctl->records, 1);
	return 0;
}

static int should_stop(void)
{
	return ctl->stop || ctl->slot[me].exit_req;
}

static void wexit(int code)
{
	note_death(getpid(), now());
	_exit(code);
}

/* ---- writers ---- */

static int writer_open(struct chan *c, int fd)
{
	char path[256];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	switch (c->kind) {
	case FIFO:
		path_of(path, sizeof path, "fifo", c->id);
		for (;;) {
			fd = open(path, O_WRONLY | O_NONBLOCK);
			if (fd >= 0)
				break;
			if (errno != ENXIO || c->reader != RUNNING || should_stop())
				return -1;
			usleep(500);
		}
		fcntl(fd, F_SETFL, 0);
		return fd;
	case STREAM:
		while (!c->ready)
			if (c->reader != RUNNING || should_stop())
				return -1;
			else
				usleep(500);
		path_of(a.sun_path, sizeof a.sun_path, "sock", c->id);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof a))
			return -1;
		return fd;
	case DGRAM:
		while (!c->ready)
			if (c->reader != RUNNING || should_stop())
				return -1;
			else
				usleep(500);
		return socket(AF_UNIX, SOCK_DGRAM, 0);
	}
	return fd;
}

/* Sends record `seq`; 0 sent, -1 the reader is gone (or we are told to stop). */
static int send_one(struct chan *c, int fd, long seq)
{
	unsigned char r[RECORD];
	make_record(r, c->id, seq);
	if (c->kind == MSGQ) {
		struct { long mtype; unsigned char t[RECORD]; } m = { c->id + 1, { 0 } };
		memcpy(m.t, r, RECORD);
		while (msgsnd(msqid, &m, RECORD, IPC_NOWAIT)) {
			if (errno != EAGAIN || c->reader != RUNNING || should_stop())
				return -1;
			usleep(500);
		}
		return 0;
	}
	if (c->kind == DGRAM) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		path_of(a.sun_path, sizeof a.sun_path, "dgram", c->id);
		for (;;) {
			if (sendto(fd, r, RECORD, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a) == RECORD)
				return 0;
			if (errno != EAGAIN || c->reader != RUNNING || should_stop())
				return -1;
			usleep(200);
		}
	}
	if (c->kind == SEQPACKET && seq % 4 == 0) {
		int tp[2];
		if (pipe(tp))
			return -1;
		if (write(tp[1], &seq, sizeof seq) != sizeof seq)
			return -1;
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { r, RECORD };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &tp[0], sizeof(int));
		ssize_t n = sendmsg(fd, &m, 0);
		close(tp[0]);
		close(tp[1]);
		return n == RECORD ? 0 : -1;
	}
	return write(fd, r, RECORD) == RECORD ? 0 : -1;
}

static void writer(struct chan *c, int fd)
{
	unsigned seed = getpid();
	signal(SIGPIPE, SIG_IGN);
	fd = writer_open(c, fd);
	if (fd < 0 && c->kind != MSGQ && c->kind != PIPE && c->kind != SEQPACKET)
		goto gone;
	for (long seq = 0;; seq++) {
		if (should_stop())
			break;
		if (send_one(c, fd, seq))
			goto gone;
		c->acked = seq + 1;
		if (rand_r(&seed) % 8 == 0)
			usleep(rand_r(&seed) % 1000);
	}
	if (c->kind == MSGQ) {
		/* The end: a record of its own kind, id and sequence -1. */
		struct { long mtype; unsigned char t[RECORD]; } m = { c->id + 1, { 0 } };
		make_record(m.t, c->id, -1);
		while (msgsnd(msqid, &m, RECORD, IPC_NOWAIT) && errno == EAGAIN && c->reader == RUNNING)
			usleep(500);
	}
	c->writer_gone_delay = run_delay(partner());
	c->writer_gone = now();
	wexit(0);
gone:
	latency("a writer", c->reader_gone, c->reader_gone_delay);
	c->writer_gone_delay = run_delay(partner());
	c->writer_gone = now();
	wexit(0);
}

/* ---- readers ---- */

static int reader_open(struct chan *c, int fd)
{
	char path[256];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	switch (c->kind) {
	case FIFO:
		path_of(path, sizeof path, "fifo", c->id);
		fd = open(path, O_RDONLY | O_NONBLOCK);
		return fd;
	case STREAM: {
		path_of(a.sun_path, sizeof a.sun_path, "sock", c->id);
		int l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
			return -1;
		c->ready = 1;
		struct pollfd p = { l, POLLIN, 0 };
		while (poll(&p, 1, 20) == 0)
			if (c->writer != RUNNING || should_stop()) {
				close(l);
				return -1;
			}
		fd = accept(l, NULL, NULL);
		close(l);
		return fd;
	}
	case DGRAM: {
		path_of(a.sun_path, sizeof a.sun_path, "dgram", c->id);
		fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (bind(fd, (struct sockaddr *)&a, sizeof a))
			return -1;
		struct timeval tv = { 0, 20000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		c->ready = 1;
		return fd;
	}
	}
	return fd;
}

/* A stream of records, waited for in epoll. */
static void read_stream(struct chan *c, int fd)
{
	unsigned char buf[RECORD * 64];
	size_t have = 0;
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN };
	if (c->kind == FIFO)
		fcntl(fd, F_SETFL, O_NONBLOCK);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		return;
	for (;;) {
		/* Told to stop, a reader reads on to the end; asked to exit, it goes. */
		if (ctl->slot[me].exit_req)
			return;
		int n = epoll_wait(ep, &ev, 1, 50);
		if (n == 0) {
			/* A FIFO reader that opened before any writer does not see the end by poll. */
			if (c->kind == FIFO && c->writer != RUNNING) {
				ssize_t k = read(fd, buf + have, sizeof buf - have);
				if (k == 0)
					break;
			}
			continue;
		}
		ssize_t k = read(fd, buf + have, sizeof buf - have);
		if (k == 0)
			break;
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		have += k;
		size_t at = 0;
		for (; at + RECORD <= have; at += RECORD)
			if (check_record(c, buf + at))
				return;
		memmove(buf, buf + at, have - at);
		have -= at;
	}
	if (have) {
		c->errors++;
		snprintf(c->err, sizeof c->err, "%s chan %ld: %zu bytes of a record at the end",
			 kind_name[c->kind], c->id, have);
		return;
	}
	c->eof = 1;
	latency("a reader", c->writer_gone, c->writer_gone_delay);
}

static void read_seqpacket(struct chan *c, int fd)
{
	for (;;) {
		if (ctl->slot[me].exit_req)
			return;
		unsigned char r[RECORD * 2];
		char cbuf[CMSG_SPACE(sizeof(int) * 4)];
		struct iovec iov = { r, sizeof r };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 50) == 0)
			continue;
		ssize_t n = recvmsg(fd, &m, 0);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		long seq = c->received;
		int passed = -1;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
				memcpy(&passed, CMSG_DATA(cm), sizeof(int));
		if (n != RECORD || check_record(c, r)) {
			if (n != RECORD) {
				c->errors++;
				snprintf(c->err, sizeof c->err, "seqpacket chan %ld: a record of %zd bytes", c->id, n);
			}
			return;
		}
		if ((seq % 4 == 0) != (passed >= 0)) {
			c->errors++;
			snprintf(c->err, sizeof c->err, "seqpacket chan %ld: record %ld %s an fd", c->id, seq,
				 passed >= 0 ? "came with" : "lost its");
			return;
		}
		if (passed >= 0) {
			long got = -1;
			if (read(passed, &got, sizeof got) != sizeof got || got != seq) {
				c->errors++;
				snprintf(c->err, sizeof c->err, "seqpacket chan %ld: the pipe passed with record %ld read %ld",
					 c->id, seq, got);
				return;
			}
			close(passed);
			__sync_fetch_and_add(&ctl->scm_fds, 1);
		}
	}
	c->eof = 1;
	latency("a reader", c->writer_gone, c->writer_gone_delay);
}

static void read_dgram(struct chan *c, int fd)
{
	unsigned char r[RECORD * 2];
	int idle = 0;
	for (;;) {
		if (ctl->slot[me].exit_req)
			return;
		ssize_t n = recv(fd, r, sizeof r, 0);
		if (n < 0) {
			/* Timed out: done once the writer is gone and nothing came twice since. */
			if (c->writer != RUNNING && ++idle >= 2)
				break;
			continue;
		}
		idle = 0;
		if (n != RECORD || check_record(c, r))
			return;
	}
	c->eof = 1;
	latency("a reader", c->writer_gone, c->writer_gone_delay);
}

static void read_msgq(struct chan *c)
{
	int idle = 0;
	for (;;) {
		if (ctl->slot[me].exit_req)
			return;
		struct { long mtype; unsigned char t[RECORD]; } m;
		ssize_t n = msgrcv(msqid, &m, RECORD, c->id + 1, IPC_NOWAIT);
		if (n < 0) {
			/* Only "none of our type queued" may end the channel. */
			if (errno != ENOMSG) {
				c->errors++;
				snprintf(c->err, sizeof c->err, "msgq chan %ld: msgrcv after record %ld: %s (errno %d)",
					 c->id, c->received, strerror(errno), errno);
				return;
			}
			if (c->writer != RUNNING && ++idle >= 2)
				break;
			usleep(1000);
			continue;
		}
		idle = 0;
		uint64_t v[4];
		memcpy(v, m.t, RECORD);
		if ((long)v[1] == -1) {
			/* The end only if it is whole and ours: a torn or foreign one is a fault. */
			if (n != RECORD || v[0] != (uint64_t)c->id || v[3] != MAGIC ||
			    v[2] != (v[1] * 0x9e3779b97f4a7c15ULL ^ v[0])) {
				c->errors++;
				snprintf(c->err, sizeof c->err,
					 "msgq chan %ld: after record %ld, a torn or foreign end marker (id %lld)", c->id,
					 c->received, (long long)v[0]);
				return;
			}
			c->marker = 1;
			break;
		}
		if (n != RECORD || check_record(c, m.t))
			return;
	}
	c->eof = 1;
	latency("a reader", c->writer_gone, c->writer_gone_delay);
}

static void reader(struct chan *c, int fd)
{
	signal(SIGPIPE, SIG_IGN);
	if (c->kind == FIFO || c->kind == STREAM || c->kind == DGRAM)
		fd = reader_open(c, fd);
	if (fd < 0 && c->kind != MSGQ) {
		c->reader_gone_delay = run_delay(partner());
		c->reader_gone = now();
		wexit(0);
	}
	switch (c->kind) {
	case PIPE:
	case FIFO:
	case STREAM:
		read_stream(c, fd);
		break;
	case SEQPACKET:
		read_seqpacket(c, fd);
		break;
	case DGRAM:
		read_dgram(c, fd);
		break;
	case MSGQ:
		read_msgq(c);
		break;
	}
	c->reader_gone_delay = run_delay(partner());
	c->reader_gone = now();
	wexit(c->errors ? 1 : 0);
}

/* ---- solo workers ---- */

static void sem_worker(void)
{
	unsigned seed = getpid();
	while (!should_stop()) {
		int k = rand_r(&seed) % NDATA, what = rand_r(&seed) % 3;
		if (what == 0) {
			struct sembuf take = { NDATA, -1, SEM_UNDO }, give = { NDATA, 1, SEM_UNDO };
			struct timespec ts = { 3, 0 };
			long long t0 = now();
			if (semtimedop(semid, &take, 1, &ts)) {
				if (errno != EINTR && errno != EAGAIN)
					fail("mutex: semtimedop: %s", strerror(errno));
				continue;
			}
			/* The last holder did not give it back: it was killed holding it. */
			pid_t prev = ctl->mutex_pid;
			if (prev && death_of(prev) > t0 && prev == ctl->sem_killed)
				latency("a mutex waiter", death_of(prev), ctl->sem_kill_delay[me]);
			__sync_fetch_and_add(&ctl->mutex_waits, 1);
			ctl->mutex_pid = getpid();
			usleep(rand_r(&seed) % 2000);
			ctl->mutex_pid = 0;
			semop(semid, &give, 1);
		} else if (what == 1) {
			struct sembuf op = { k, rand_r(&seed) % 2 ? 1 : -1, SEM_UNDO | IPC_NOWAIT };
			semop(semid, &op, 1);
		} else {
			/* Counted: the data semaphore and this slot's witness, in one operation. */
			struct sembuf ops[2] = { { k, 1, 0 }, { NDATA + 1 + me * NDATA + k, 1, 0 } };
			/* Up or down together, so that the witness stays in range. */
			if (rand_r(&seed) % 2) {
				ops[0].sem_op = ops[1].sem_op = -1;
			}
			ops[0].sem_flg = ops[1].sem_flg = IPC_NOWAIT;
			if (semop(semid, ops, 2) && errno != EAGAIN && errno != ERANGE)
				fail("counted semop: %s", strerror(errno));
		}
		__sync_fetch_and_add(&ctl->sem_ops, 1);
		if (rand_r(&seed) % 4 == 0)
			usleep(rand_r(&seed) % 500);
	}
	wexit(0);
}

static void shm_worker(void)
{
	unsigned seed = getpid();
	long *p = shmat(shmid, NULL, 0);
	if (p == (void *)-1)
		fail("shmat: %s", strerror(errno));
	while (!should_stop()) {
		__atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
		__sync_fetch_and_add(&ctl->shm_acked, 1);
		if (rand_r(&seed) % 64 == 0) {
			shmdt(p);
			p = shmat(shmid, NULL, 0);
			if (p == (void *)-1)
				fail("shmat again: %s", strerror(errno));
		}
		if (rand_r(&seed) % 8 == 0)
			usleep(rand_r(&seed) % 500);
	}
	wexit(0);
}

/* ---- the stop helper ---- */

/* Stops the workers the supervisor asks for and continues them later; continues everyone at
 * the stop. */
static void stop_helper(void)
{
	while (!ctl->helper_exit) {
		long long t = now();
		for (int s = 0; s < SLOTS; s++) {
			struct slot *sl = &ctl->slot[s];
			pid_t pid = sl->pid;
			if (sl->stopped && (ctl->stop || t >= sl->stop_until)) {
				kill(sl->stopped, SIGCONT);
				sl->stopped = 0;
			}
			if (sl->stop_req && !sl->stopped && pid && !ctl->stop) {
				sl->stop_until = t + sl->stop_req;
				sl->stopped = pid;
				kill(pid, SIGSTOP);
			}
			sl->stop_req = 0;
		}
		usleep(500);
	}
	_exit(0);
}

/* ---- the supervisor ---- */

static int solo_role(int s)
{
	return s < 2 * PAIRS + SEM_WORKERS ? SEMW : SHMW;
}

static pid_t spawn(int s, int role, int chan, int fd_mine, int fd_other)
{
	ctl->slot[s].role = role;
	ctl->slot[s].chan = chan;
	ctl->slot[s].exit_req = 0;
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		me = s;
		if (fd_other >= 0)
			close(fd_other);
		switch (role) {
		case WRITER:
			writer(&ctl->chan[chan], fd_mine);
			break;
		case READER:
			reader(&ctl->chan[chan], fd_mine);
			break;
		case SEMW:
			sem_worker();
			break;
		case SHMW:
			shm_worker();
			break;
		}
		_exit(0);
	}
	ctl->slot[s].pid = pid;
	return pid;
}

static long next_chan_id;

static void new_channel(int pair, int kind)
{
	long id = next_chan_id++;
	/* By pair: a pair's state is made again only once both its workers were reaped. Taken
	 * by id modulo 256, a channel still running when the 256th after it was made shared its
	 * state with that one: made anew under the old workers, then marked ended when they were
	 * reaped while the new ones still ran (a message queue reader then stopped early, its
	 * writer's last records unread). */
	int ci = pair;
	struct chan *c = &ctl->chan[ci];
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->id = id;
	int fds[2] = { -1, -1 };
	char path[256];
	if (kind == PIPE && pipe(fds))
		exit(2);
	if (kind == SEQPACKET && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds))
		exit(2);
	if (kind == FIFO) {
		path_of(path, sizeof path, "fifo", id);
		if (mkfifo(path, 0600))
			exit(2);
	}
	/* A pipe's read end is fds[0]; a socketpair's ends are alike. */
	spawn(2 * pair, WRITER, ci, fds[1], fds[0]);
	spawn(2 * pair + 1, READER, ci, fds[0], fds[1]);
	if (fds[0] >= 0) {
		close(fds[0]);
		close(fds[1]);
	}
	ctl->chans++;
}

/* Both ends of a channel ended: its records add up, its names go. */
static void check_channel(struct chan *c)
{
	char path[256];
	const char *k = kind_name[c->kind];
	if (c->errors)
		fail("%s", c->err);
	if (c->received > c->acked + 1)
		fail("%s chan %ld: received %ld, only %ld sent", k, c->id, c->received, c->acked);
	if (c->eof && c->received < c->acked && c->kind == MSGQ) {
		/* What is still queued tells an end marker that overtook records from a queue that
		 * answered ENOMSG while it held them, and both from records that are gone. */
		long left = 0, first = -2;
		struct { long mtype; unsigned char t[RECORD]; } m;
		while (msgrcv(msqid, &m, RECORD, c->id + 1, IPC_NOWAIT) >= 0) {
			uint64_t v[4];
			memcpy(v, m.t, RECORD);
			first = left++ ? first : (long)v[1];
		}
		fail("msgq chan %ld: read to the end (%s) but %ld of %ld records; %ld still queued, from %ld", c->id,
		     c->marker ? "end marker" : "ENOMSG twice", c->received, c->acked, left, first);
	}
	if (c->eof && c->received < c->acked)
		fail("%s chan %ld: read to the end but %ld of %ld records", k, c->id, c->received, c->acked);
	if (c->eof && c->writer == DONE && c->received != c->acked)
		fail("%s chan %ld: the writer finished: %ld received of %ld", k, c->id, c->received, c->acked);
	const char *names[] = { "fifo", "sock", "dgram" };
	for (int i = 0; i < 3; i++) {
		path_of(path, sizeof path, names[i], c->id);
		unlink(path);
	}
	if (c->kind == MSGQ) {
		struct { long mtype; unsigned char t[RECORD]; } m;
		while (msgrcv(msqid, &m, RECORD, c->id + 1, IPC_NOWAIT) >= 0)
			;
	}
}

static int slot_of(pid_t pid)
{
	for (int s = 0; s < SLOTS; s++)
		if (ctl->slot[s].pid == pid)
			return s;
	return -1;
}

/* Reaps what ended; returns how many. */
static int reap(int hang)
{
	int n = 0, st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, hang ? 0 : WNOHANG)) > 0) {
		int s = slot_of(pid);
		n++;
		if (s < 0)
			continue;
		struct slot *sl = &ctl->slot[s];
		int killed = WIFSIGNALED(st);
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && sl->role != READER)
			fail("a worker (role %d) exited %d", sl->role, WEXITSTATUS(st));
		if (sl->role == WRITER || sl->role == READER) {
			struct chan *c = &ctl->chan[sl->chan];
			if (sl->role == WRITER)
				c->writer = killed ? KILLED : DONE;
			else
				c->reader = killed ? KILLED : DONE;
			if (c->writer != RUNNING && c->reader != RUNNING)
				check_channel(c);
		}
		if (killed && sl->role == SHMW)
			ctl->shm_kills++;
		sl->pid = 0;
		sl->role = NONE;
		if (hang)
			break;
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: chaos SECONDS SEED DIR\n");
		return 2;
	}
	long long secs = atol(argv[1]);
	unsigned seed = atoi(argv[2]);
	dir = argv[3];
	setvbuf(stdout, NULL, _IONBF, 0);
	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return 2;
	int nsems = NDATA + 1 + SLOTS * NDATA;
	semid = semget(IPC_PRIVATE, nsems, 0600);
	msqid = msgget(IPC_PRIVATE, 0600);
	shmid = shmget(IPC_PRIVATE, 4096, 0600);
	if (semid < 0 || msqid < 0 || shmid < 0) {
		perror("setup");
		return 2;
	}
	unsigned short init[NDATA + 1 + SLOTS * NDATA] = { 0 };
	for (int k = 0; k < NDATA; k++)
		init[k] = 100;
	init[NDATA] = 1;
	semctl(semid, 0, SETALL, init);
	pid_t helper = fork();
	if (helper == 0)
		stop_helper();
	long long end = now() + secs * SEC;
	int kind = 0;
	while (now() < end && !ctl->failed) {
		reap(0);
		for (int p = 0; p < PAIRS; p++)
			if (ctl->slot[2 * p].role == NONE && ctl->slot[2 * p + 1].role == NONE)
				new_channel(p, kind++ % KINDS);
		for (int s = 2 * PAIRS; s < SLOTS; s++)
			if (ctl->slot[s].role == NONE)
				spawn(s, solo_role(s), 0, -1, -1);
		int s = rand_r(&seed) % SLOTS, what = rand_r(&seed) % 100;
		struct slot *sl = &ctl->slot[s];
		if (sl->pid && !sl->stopped && !sl->exit_req && s / 2 != SPARED) {
			if (what < 35) {
				struct chan *c = &ctl->chan[sl->chan];
				long long when = now();
				/* Marked dead first: the survivor's latency counts from here. */
				note_death(sl->pid, when);
				pid_t other = ctl->slot[s ^ 1].pid;
				if (sl->role == WRITER && !c->writer_gone) {
					c->writer_gone_delay = run_delay(other);
					c->writer_gone = when;
				}
				if (sl->role == READER && !c->reader_gone) {
					c->reader_gone_delay = run_delay(other);
					c->reader_gone = when;
				}
				if (sl->role == SEMW) {
					for (int w = 2 * PAIRS; w < 2 * PAIRS + SEM_WORKERS; w++)
						ctl->sem_kill_delay[w] = ctl->slot[w].pid ? run_delay(ctl->slot[w].pid) : 0;
					ctl->sem_killed = sl->pid;
				}
				kill(sl->pid, SIGKILL);
				ctl->kills++;
			} else if (what < 70) {
				sl->stop_req = (2 + rand_r(&seed) % 18) * 1000000LL;
				ctl->stops++;
			} else {
				sl->exit_req = 1;
				ctl->exits++;
			}
		}
		usleep(2000 + rand_r(&seed) % 6000);
	}
	/* Stop: everyone runs again (the helper continues the stopped) and finishes; nobody may
	 * stay blocked. */
	ctl->stop = 1;
	long long deadline = now() + 10 * SEC;
	for (;;) {
		int left = 0;
		for (int s = 0; s < SLOTS; s++)
			left += ctl->slot[s].pid != 0;
		if (!left)
			break;
		if (now() > deadline) {
			/* Who, in what role, asleep where (the kernel's wchan and the syscall). */
			char who[400] = "", path[64], buf[64];
			for (int s = 0, n = 0; s < SLOTS; s++) {
				pid_t pid = ctl->slot[s].pid;
				if (!pid || n++ >= 4)
					continue;
				size_t len = strlen(who);
				snprintf(who + len, sizeof who - len, " [pid %d role %d", (int)pid, ctl->slot[s].role);
				const char *files[] = { "wchan", "syscall" };
				for (int f = 0; f < 2; f++) {
					snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, files[f]);
					int fd = open(path, O_RDONLY);
					ssize_t k = fd < 0 ? -1 : read(fd, buf, 40);
					if (fd >= 0)
						close(fd);
					buf[k > 0 ? k : 0] = 0;
					buf[strcspn(buf, "\n")] = 0;
					len = strlen(who);
					snprintf(who + len, sizeof who - len, " %s %s", files[f], buf);
				}
				len = strlen(who);
				snprintf(who + len, sizeof who - len, "]");
			}
			fail("%d workers still running 10 s after the stop:%s", left, who);
			for (int s = 0; s < SLOTS; s++)
				if (ctl->slot[s].pid)
					kill(ctl->slot[s].pid, SIGKILL);
			/* The helper first: reaping waits for any child, and it would wait forever. */
			ctl->helper_exit = 1;
			waitpid(helper, NULL, 0);
			while (reap(1))
				;
			break;
		}
		if (!reap(0))
			usleep(1000);
	}
	ctl->helper_exit = 1;
	waitpid(helper, NULL, 0);
	/* Every SEM_UNDO operation undone, the counted ones all there. */
	for (int k = 0; k < NDATA; k++) {
		long want = 100;
		for (int s = 0; s < SLOTS; s++)
			want += semctl(semid, NDATA + 1 + s * NDATA + k, GETVAL);
		long got = semctl(semid, k, GETVAL);
		if (got != want)
			fail("semaphore %d: %ld, the witnesses say %ld", k, got, want);
	}
	if (semctl(semid, NDATA, GETVAL) != 1)
		fail("the mutex is %d, not 1", semctl(semid, NDATA, GETVAL));
	long *p = shmat(shmid, NULL, SHM_RDONLY);
	long counter = p == (void *)-1 ? -1 : *p;
	if (counter < ctl->shm_acked || counter > ctl->shm_acked + ctl->shm_kills)
		fail("the segment's counter is %ld, %ld acknowledged", counter, ctl->shm_acked);
	shmdt(p);
	semctl(semid, 0, IPC_RMID);
	msgctl(msqid, IPC_RMID, NULL);
	shmctl(shmid, IPC_RMID, NULL);
	if (ctl->failed) {
		printf("FAIL %s\n", ctl->fail);
		return 1;
	}
	printf("ok channels=%ld records=%ld scm_fds=%ld sem_ops=%ld mutex=%ld shm=%ld kills=%ld stops=%ld exits=%ld "
	       "max_latency_ms=%lld\n",
	       ctl->chans, ctl->records, ctl->scm_fds, ctl->sem_ops, ctl->mutex_waits, ctl->shm_acked, ctl->kills,
	       ctl->stops, ctl->exits, ctl->max_latency / 1000000);
	return 0;
}
