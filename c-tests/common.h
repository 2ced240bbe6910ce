/* Helpers for the System V IPC differential tests.
 * Output must be identical under the kernel and under the shim, so only
 * relations are printed for pids, addresses and times. */
#ifndef IPCSHIM_COMMON_H
#define IPCSHIM_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <stddef.h>

#define PAGE 4096UL
#define NOBODY 65534
/* Exit code of a child whose setup failed; the parent then fails too. */
#define SETUP_FAIL 99

static pid_t g_main, g_child;
/* The start, in the coarse clock the kernel stamps inodes with (a tick behind time(2)): a
 * pipe made right after a second began may carry the second before. */
static time_t g_t0;

static __attribute__((unused)) const char *errname(int e)
{
	static char buf[16];
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(E2BIG) E(ENOEXEC)
	E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY)
	E(EEXIST) E(ENODEV) E(EINVAL) E(ENFILE) E(EMFILE) E(EFBIG) E(ENOSPC)
	E(EROFS) E(EPIPE) E(ERANGE) E(EDEADLK) E(ENOLCK) E(ENOSYS) E(ENOMSG)
	E(EIDRM) E(EOVERFLOW) E(EOPNOTSUPP) E(ETIMEDOUT) E(EOWNERDEAD)
	E(ENOTRECOVERABLE) E(EHWPOISON)
#undef E
	case 0: return "0";
	}
	snprintf(buf, sizeof buf, "E%d", e);
	return buf;
}

static __attribute__((unused)) const char *signame(int s)
{
	static char buf[16];
	switch (s) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGKILL: return "SIGKILL";
	case SIGABRT: return "SIGABRT";
	case SIGILL: return "SIGILL";
	case SIGSYS: return "SIGSYS";
	}
	snprintf(buf, sizeof buf, "SIG%d", s);
	return buf;
}

static __attribute__((unused)) void die(const char *what)
{
	fprintf(stderr, "setup failure: %s: %s\n", what, strerror(errno));
	exit(getpid() == g_main ? 2 : SETUP_FAIL);
}

/* Unbuffered stdout: children and the parent never duplicate output. */
static __attribute__((unused)) void setup(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	g_main = getpid();
	struct timespec coarse;
	clock_gettime(CLOCK_REALTIME_COARSE, &coarse);
	g_t0 = coarse.tv_sec;
}

#define CASE(name) printf("case %s\n", name)

static __attribute__((unused)) void show_res(const char *what, long r, int e)
{
	if (r == -1)
		printf("%s = -1 %s\n", what, errname(e));
	else
		printf("%s = %ld\n", what, r);
}

/* Print an int/long-returning call with its errno by name. */
#define SHOW(expr) ({ errno = 0; long r_ = (long)(expr); int e_ = errno; \
	show_res(#expr, r_, e_); r_; })

static __attribute__((unused)) void show_at(const char *what, void *r, void *want, int e)
{
	if (r == (void *)-1)
		printf("%s = -1 %s\n", what, errname(e));
	else if (want)
		printf("%s = %s\n", what, r == want ? "== expected" : "!= expected");
	else
		printf("%s = %s\n", what,
		       ((uintptr_t)r & (PAGE - 1)) ? "unaligned" : "page aligned");
}

/* Print a shmat() result: compared with want, or its alignment if want is NULL. */
#define AT(expr, want) ({ errno = 0; void *r_ = (expr); int e_ = errno; \
	show_at(#expr, r_, want, e_); r_; })

static __attribute__((unused)) const char *pidrel(pid_t p)
{
	if (p == 0)
		return "0";
	if (p == getpid())
		return "self";
	if (p == g_main)
		return "parent";
	if (p == g_child)
		return "child";
	return "other";
}

static __attribute__((unused)) const char *trel(time_t t)
{
	if (t == 0)
		return "0";
	if (t >= g_t0 && t <= time(NULL))
		return "set";
	return "OUT OF RANGE";
}

static __attribute__((unused)) void show_ds(const struct shmid_ds *d)
{
	printf("  key=%#x uid=%u gid=%u cuid=%u cgid=%u mode=%#o seq=%u segsz=%zu "
	       "nattch=%lu cpid=%s lpid=%s atime=%s dtime=%s ctime=%s\n",
	       (unsigned)d->shm_perm.__key, d->shm_perm.uid, d->shm_perm.gid,
	       d->shm_perm.cuid, d->shm_perm.cgid, d->shm_perm.mode,
	       d->shm_perm.__seq, d->shm_segsz, (unsigned long)d->shm_nattch,
	       pidrel(d->shm_cpid), pidrel(d->shm_lpid), trel(d->shm_atime),
	       trel(d->shm_dtime), trel(d->shm_ctime));
}

/* IPC_STAT and print every field; returns shmctl's result. */
static __attribute__((unused)) int stat_show(int id)
{
	struct shmid_ds d;
	errno = 0;
	int r = shmctl(id, IPC_STAT, &d);
	if (r == -1) {
		printf("  IPC_STAT = -1 %s\n", errname(errno));
		return -1;
	}
	show_ds(&d);
	return 0;
}

static __attribute__((unused)) void show_nattch(int id)
{
	struct shmid_ds d;
	errno = 0;
	if (shmctl(id, IPC_STAT, &d) == -1)
		printf("  nattch: IPC_STAT = -1 %s\n", errname(errno));
	else
		printf("  nattch=%lu lpid=%s\n", (unsigned long)d.shm_nattch,
		       pidrel(d.shm_lpid));
}

static __attribute__((unused)) void show_status(const char *who, int st)
{
	if (WIFEXITED(st))
		printf("  %s exited %d\n", who, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("  %s killed by %s\n", who, signame(WTERMSIG(st)));
	else
		printf("  %s status %#x\n", who, st);
}

static __attribute__((unused)) void become(uid_t uid)
{
	if (setgroups(0, NULL) || setgid(uid) || setuid(uid))
		die("setuid");
}

static __attribute__((unused)) int wait_child(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid");
	if (WIFEXITED(st) && WEXITSTATUS(st) == SETUP_FAIL) {
		fprintf(stderr, "child setup failed\n");
		exit(2);
	}
	return st;
}

/* Run fn in a child (as uid unless 0), relay its stdout in order and print
 * how it ended unless it exited 0. */
static __attribute__((unused)) int in_child(uid_t uid, void (*fn)(void *), void *arg)
{
	int p[2];
	if (pipe(p))
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(p[0]);
		if (dup2(p[1], 1) < 0)
			die("dup2");
		close(p[1]);
		if (uid)
			become(uid);
		fn(arg);
		_exit(0);
	}
	g_child = pid;
	close(p[1]);
	char buf[4096];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof buf)) > 0)
		if (write(1, buf, n) != n)
			die("write");
	close(p[0]);
	int st = wait_child(pid);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_status("child", st);
	return st;
}

/* An unmapped, 2 MiB aligned address with free space on both sides, far
 * from the edges of the gap so a library's own small mappings do not land on it. */
static __attribute__((unused)) char *hole(void)
{
	size_t len = 64UL << 20;
	char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if (munmap(p, len))
		die("munmap");
	return (char *)(((uintptr_t)p + len / 2) & ~((2UL << 20) - 1));
}

/* Block until the wall clock second changes, so a time field set after this
 * is distinguishable from one set before. */
static __attribute__((unused)) time_t next_second(void)
{
	time_t t = time(NULL);
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	while (time(NULL) == t)
		nanosleep(&ts, NULL);
	return time(NULL);
}

/* Permissions of the mapping containing p, from /proc/self/maps ("rw-s"). */
static __attribute__((unused)) const char *map_perms(const void *p)
{
	static char perms[8];
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		die("maps");
	unsigned long lo, hi;
	char line[512];
	strcpy(perms, "none");
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    (uintptr_t)p >= lo && (uintptr_t)p < hi)
			break;
		else
			strcpy(perms, "none");
	fclose(f);
	return perms;
}

/* Does touching p (read, or write if w) kill a child? Prints the outcome. */
static __attribute__((unused)) void probe(const char *what, volatile char *p, int w)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (w)
			*p = 1;
		else
			(void)*p;
		_exit(0);
	}
	g_child = pid;
	int st = wait_child(pid);
	if (WIFSIGNALED(st))
		printf("  %s: %s\n", what, signame(WTERMSIG(st)));
	else
		printf("  %s: ok\n", what);
}

/* Child body: creates segment 0x10040005 (attached and written when *arg), then exits. */
static __attribute__((unused)) void create_and_exit(void *arg)
{
	int attach = *(int *)arg;
	int id = shmget(0x10040005, 4096, IPC_CREAT | 0600);
	if (id < 0)
		die("shmget");
	if (attach) {
		char *p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			die("shmat");
		strcpy(p, "left by child");
	}
	exit(0);
}

/* ---- Pipes, FIFOs, poll and select (pipe_*.c, fifo_*.c, poll_*.c, select_*.c) ---- */
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/uio.h>

/* errname(), plus the errnos of file and pipe calls. */
static __attribute__((unused)) const char *errname_io(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(ESPIPE) E(ENXIO) E(EISDIR) E(ENOTTY) E(ENOBUFS) E(EXDEV) E(ENOTDIR)
	E(ELOOP) E(ENAMETOOLONG) E(ETXTBSY) E(ENOTEMPTY) E(ENOPKG) E(ENOTSOCK)
	E(EADDRINUSE) E(EADDRNOTAVAIL) E(ECONNREFUSED) E(ECONNRESET) E(ECONNABORTED)
	E(EISCONN) E(ENOTCONN) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT)
	E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EAFNOSUPPORT) E(EINPROGRESS) E(EALREADY)
	E(ETOOMANYREFS) E(ESHUTDOWN) E(EDOM)
#undef E
	}
	return errname(e);
}

static __attribute__((unused)) const char *signame_io(int s)
{
	switch (s) {
	case SIGPIPE: return "SIGPIPE";
	case SIGALRM: return "SIGALRM";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	case SIGCHLD: return "SIGCHLD";
	}
	return signame(s);
}

static __attribute__((unused)) void show_io(const char *what, long r, int e)
{
	if (r == -1)
		printf("%s = -1 %s\n", what, errname_io(e));
	else
		printf("%s = %ld\n", what, r);
}

/* SHOW with the errno names of errname_io(). */
#define IOSHOW(expr) ({ errno = 0; long r_ = (long)(expr); int e_ = errno; \
	show_io(#expr, r_, e_); r_; })

/* For a call returning a new fd: prints "fd", not its number. */
#define FDSHOW(expr) ({ errno = 0; long r_ = (long)(expr); int e_ = errno; \
	if (r_ >= 0) printf("%s = fd\n", #expr); else show_io(#expr, r_, e_); r_; })

static __attribute__((unused)) void show_status_io(const char *who, int st)
{
	if (WIFEXITED(st))
		printf("  %s exited %d\n", who, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("  %s killed by %s\n", who, signame_io(WTERMSIG(st)));
	else
		printf("  %s status %#x\n", who, st);
}

static __attribute__((unused)) void io_pipe(int p[2])
{
	if (pipe(p))
		die("pipe");
}

static __attribute__((unused)) void io_close(int fd)
{
	if (close(fd))
		die("close");
}

static __attribute__((unused)) void closep(int p[2])
{
	io_close(p[0]);
	io_close(p[1]);
}

/* Read until EOF; returns the byte count, the data in buf (up to cap). */
static __attribute__((unused)) long read_all(int fd, char *buf, long cap)
{
	long total = 0, n;
	while ((n = read(fd, buf + total, cap - total)) > 0)
		total += n;
	if (n < 0)
		die("read_all");
	return total;
}

/* One byte through a synchronisation pipe. */
static __attribute__((unused)) void io_post(int fd)
{
	if (write(fd, "s", 1) != 1)
		die("post");
}

static __attribute__((unused)) void io_wait(int fd)
{
	char c;
	ssize_t n;
	while ((n = read(fd, &c, 1)) == -1 && errno == EINTR)
		;
	if (n != 1)
		die("wait");
}

static __attribute__((unused)) pid_t io_fork(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid > 0)
		g_child = pid;
	return pid;
}

/* waitpid, retried after a signal handler interrupted it. */
static __attribute__((unused)) int io_reap(pid_t pid)
{
	int st;
	pid_t r;
	while ((r = waitpid(pid, &st, 0)) == -1 && errno == EINTR)
		;
	if (r != pid)
		die("waitpid");
	if (WIFEXITED(st) && WEXITSTATUS(st) == SETUP_FAIL) {
		fprintf(stderr, "child setup failed\n");
		exit(2);
	}
	return st;
}

/* Block until process pid is asleep (state S): how a helper knows that
 * its partner is blocked in the call under test. */
/* The state letter of pid in /proc/PID/stat ('?' if it cannot be read there). */
static __attribute__((unused)) char io_state_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open stat");
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		die("read stat");
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Whether pid is in state S now. */
static int io_is_sleeping(pid_t pid)
{
	return io_state_of(pid) == 'S';
}

/* How many times pid has been scheduled (the third field of /proc/PID/schedstat); -1 if
 * unknown. */
static long long io_runs(pid_t pid)
{
	char path[64], buf[128];
	long long run, wait, slices;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return sscanf(buf, "%lld %lld %lld", &run, &wait, &slices) == 3 ? slices : -1;
}

/* Waits until pid sleeps for good: in state S and not scheduled for 20 ms. A sleep on a
 * lock (a user-space IPC implementation's, or a page's) ends sooner; a blocked call does
 * not, but for the timed slices of a user-space wait, which a later window misses. A wait
 * that wakes more often than that is taken as asleep after 50 windows. */
static __attribute__((unused)) void io_wait_sleeping(pid_t pid)
{
	struct timespec ts = { 0, 1000 * 1000 }, settle = { 0, 20 * 1000 * 1000 };
	int windows = 0;
	for (int i = 0; i < 10000; i++) {
		if (io_is_sleeping(pid)) {
			long long runs = io_runs(pid);
			if (runs < 0 || windows++ == 50)
				return;
			nanosleep(&settle, NULL);
			if (io_is_sleeping(pid) && io_runs(pid) == runs)
				return;
			continue;
		}
		nanosleep(&ts, NULL);
	}
	errno = ETIMEDOUT;
	die("partner never slept");
}

/* Helper body: send sig to target each time it sleeps until a byte arrives
 * on ack. Retrying makes the outcome independent of whether the first
 * signal came before target had blocked. */
static __attribute__((unused)) void io_signal_until(pid_t target, int sig, int ack)
{
	struct pollfd p = { ack, POLLIN, 0 };
	for (;;) {
		io_wait_sleeping(target);
		if (poll(&p, 1, 0) > 0)
			return;
		if (kill(target, sig))
			die("kill");
		if (poll(&p, 1, 20) > 0)
			return;
	}
}

static __attribute__((unused)) void io_handler(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		die("sigaction");
}

static __attribute__((unused)) void io_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		die("fcntl O_NONBLOCK");
}

/* Write chunk-sized writes, non-blocking, until EAGAIN; the bytes accepted. */
static __attribute__((unused)) long io_fill(int fd, size_t chunk)
{
	static char buf[1 << 17];
	long total = 0;
	ssize_t n;
	int fl = fcntl(fd, F_GETFL);
	if (chunk > sizeof buf || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		die("fill");
	memset(buf, 'f', chunk);
	while ((n = write(fd, buf, chunk)) > 0)
		total += n;
	if (n == 0 || errno != EAGAIN)
		die("fill write");
	if (fcntl(fd, F_SETFL, fl))
		die("fill fcntl");
	return total;
}

/* Read, non-blocking, until EAGAIN or EOF; the bytes read. */
static __attribute__((unused)) long io_drain(int fd)
{
	static char buf[1 << 16];
	long total = 0;
	ssize_t n;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		die("drain");
	while ((n = read(fd, buf, sizeof buf)) > 0)
		total += n;
	if (n < 0 && errno != EAGAIN)
		die("drain read");
	if (fcntl(fd, F_SETFL, fl))
		die("drain fcntl");
	return total;
}

/* Bytes queued in a pipe (FIONREAD), or -1 with the errno printed by callers. */
static __attribute__((unused)) int io_nread(int fd)
{
	int n = -1;
	if (ioctl(fd, FIONREAD, &n))
		return -1;
	return n;
}

/* A flag's bit and its name, for bits_text. */
struct bitname {
	unsigned bit;
	const char *name;
};

/* The bits of `ev` as "NAME|NAME|0x…" into buf (cap bytes), "0" when none. */
static __attribute__((unused)) const char *bits_text(char *buf, size_t cap, unsigned ev,
						     const struct bitname *names, size_t n)
{
	buf[0] = 0;
	for (size_t i = 0; i < n; i++)
		if (ev & names[i].bit) {
			if (buf[0])
				strcat(buf, "|");
			strcat(buf, names[i].name);
			ev &= ~names[i].bit;
		}
	if (ev)
		snprintf(buf + strlen(buf), cap - strlen(buf), "%s%#x", buf[0] ? "|" : "", ev);
	return buf[0] ? buf : "0";
}

/* poll revents as names, "0" when none. */
static __attribute__((unused)) const char *pollbits(int ev)
{
	static char buf[160];
	static const struct bitname names[] = {
		{ POLLIN, "POLLIN" }, { POLLPRI, "POLLPRI" }, { POLLOUT, "POLLOUT" },
		{ POLLERR, "POLLERR" }, { POLLHUP, "POLLHUP" }, { POLLNVAL, "POLLNVAL" },
		{ POLLRDNORM, "POLLRDNORM" }, { POLLRDBAND, "POLLRDBAND" },
		{ POLLWRNORM, "POLLWRNORM" }, { POLLWRBAND, "POLLWRBAND" },
		{ POLLRDHUP, "POLLRDHUP" },
	};
	return bits_text(buf, sizeof buf, (unsigned)ev & 0xffff, names, sizeof names / sizeof names[0]);
}

/* poll one fd for events with timeout 0 and print what came back. */
static __attribute__((unused)) void show_poll1(const char *what, int fd, short events)
{
	struct pollfd p = { fd, events, 0 };
	errno = 0;
	int r = poll(&p, 1, 0);
	if (r < 0)
		printf("  poll %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  poll %s = %d revents=%s\n", what, r, pollbits(p.revents));
}

static __attribute__((unused)) long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A buffer whose last `valid` bytes are readable and writable and are
 * followed by a PROT_NONE page: EFAULT after exactly `valid` bytes. */
static __attribute__((unused)) char *io_edge(size_t valid)
{
	size_t pages = (valid + PAGE - 1) / PAGE;
	char *p = mmap(NULL, (pages + 1) * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if (mprotect(p + pages * PAGE, PAGE, PROT_NONE))
		die("mprotect");
	return p + pages * PAGE - valid;
}

/* ---- System V semaphores (sem_*.c) ---- */
#include <sys/sem.h>

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *__buf;
};

/* Names for the pids of labelled helper processes (waiters A, B, ...). */
static pid_t g_sem_pids[16];
static const char *g_sem_labels[16];

static __attribute__((unused)) void sem_label(pid_t pid, const char *label)
{
	for (int i = 0; i < 16; i++)
		if (!g_sem_labels[i] || g_sem_pids[i] == pid) {
			g_sem_pids[i] = pid;
			g_sem_labels[i] = label;
			return;
		}
	die("too many labels");
}

static __attribute__((unused)) void sem_unlabel_all(void)
{
	memset(g_sem_pids, 0, sizeof g_sem_pids);
	memset(g_sem_labels, 0, sizeof g_sem_labels);
}

static __attribute__((unused)) const char *sem_pidrel(pid_t p)
{
	for (int i = 0; i < 16; i++)
		if (g_sem_labels[i] && g_sem_pids[i] == p)
			return g_sem_labels[i];
	return pidrel(p);
}

static __attribute__((unused)) void show_semds(const struct semid_ds *d)
{
	printf("  key=%#x uid=%u gid=%u cuid=%u cgid=%u mode=%#o seq=%u nsems=%lu "
	       "otime=%s ctime=%s\n",
	       (unsigned)d->sem_perm.__key, d->sem_perm.uid, d->sem_perm.gid,
	       d->sem_perm.cuid, d->sem_perm.cgid, d->sem_perm.mode,
	       d->sem_perm.__seq, (unsigned long)d->sem_nsems, trel(d->sem_otime),
	       trel(d->sem_ctime));
}

/* IPC_STAT and print every field; returns semctl's result. */
static __attribute__((unused)) int sem_stat_show(int id)
{
	struct semid_ds d;
	union semun u = { .buf = &d };
	errno = 0;
	int r = semctl(id, 0, IPC_STAT, u);
	if (r == -1) {
		printf("  IPC_STAT = -1 %s\n", errname(errno));
		return -1;
	}
	show_semds(&d);
	return 0;
}

/* sem_otime and sem_ctime of id (0 and 0 if IPC_STAT fails). */
static __attribute__((unused)) void sem_times(int id, time_t *otime, time_t *ctime)
{
	struct semid_ds d;
	union semun u = { .buf = &d };
	memset(&d, 0, sizeof d);
	semctl(id, 0, IPC_STAT, u);
	*otime = d.sem_otime;
	*ctime = d.sem_ctime;
}

/* One semaphore: value, last pid, waiter counts. */
static __attribute__((unused)) void show_sem(int id, int n)
{
	int v, p, nc, zc;
	errno = 0;
	v = semctl(id, n, GETVAL);
	if (v == -1) {
		printf("  sem[%d]: GETVAL = -1 %s\n", n, errname(errno));
		return;
	}
	p = semctl(id, n, GETPID);
	nc = semctl(id, n, GETNCNT);
	zc = semctl(id, n, GETZCNT);
	printf("  sem[%d]: val=%d pid=%s ncnt=%d zcnt=%d\n", n, v,
	       p < 0 ? "ERR" : sem_pidrel(p), nc, zc);
}

/* Every value, through GETALL. */
static __attribute__((unused)) void show_vals(int id)
{
	unsigned short v[64];
	struct semid_ds d;
	union semun u = { .buf = &d };
	errno = 0;
	if (semctl(id, 0, IPC_STAT, u) == -1) {
		printf("  vals: IPC_STAT = -1 %s\n", errname(errno));
		return;
	}
	unsigned long n = d.sem_nsems < 64 ? d.sem_nsems : 64;
	u.array = v;
	if (semctl(id, 0, GETALL, u) == -1) {
		printf("  vals: GETALL = -1 %s\n", errname(errno));
		return;
	}
	printf("  vals:");
	for (unsigned long i = 0; i < n; i++)
		printf(" %u", v[i]);
	printf("\n");
}

static __attribute__((unused)) const char *sem_flags(int f)
{
	static char buf[64];
	buf[0] = 0;
	if (f & IPC_NOWAIT)
		strcat(buf, " nowait");
	if (f & SEM_UNDO)
		strcat(buf, " undo");
	if (f & ~(IPC_NOWAIT | SEM_UNDO))
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " %#x",
			 f & ~(IPC_NOWAIT | SEM_UNDO));
	return buf;
}

static __attribute__((unused)) const char *sem_ops_text(const struct sembuf *s, int n)
{
	static char buf[512];
	size_t len = 0;
	buf[0] = 0;
	for (int i = 0; i < n && len < sizeof buf - 64; i++)
		len += snprintf(buf + len, sizeof buf - len, "%s%u:%+d%s", i ? ", " : "",
				s[i].sem_num, s[i].sem_op, sem_flags(s[i].sem_flg));
	return buf;
}

/* semop (ts == NULL and !timed) or semtimedop, printed with its operations. */
static __attribute__((unused)) long sem_ops_show(int id, const struct sembuf *s, int n,
						 const struct timespec *ts, int timed)
{
	struct sembuf copy[64];
	memcpy(copy, s, n * sizeof *s);
	errno = 0;
	long r = timed ? semtimedop(id, copy, n, ts) : semop(id, copy, n);
	int e = errno;
	char what[600];
	snprintf(what, sizeof what, "%s(id, [%s])", timed ? "semtimedop" : "semop",
		 sem_ops_text(s, n));
	show_res(what, r, e);
	return r;
}

#define SEMOPS_N(...) ((int)(sizeof((struct sembuf[]){ __VA_ARGS__ }) / sizeof(struct sembuf)))
/* OPS(id, {num, op, flg}, ...): semop, printed. */
#define OPS(id, ...) sem_ops_show(id, (struct sembuf[]){ __VA_ARGS__ }, SEMOPS_N(__VA_ARGS__), NULL, 0)
/* TOPS(id, ts, {num, op, flg}, ...): semtimedop, printed. */
#define TOPS(id, ts, ...) sem_ops_show(id, (struct sembuf[]){ __VA_ARGS__ }, SEMOPS_N(__VA_ARGS__), ts, 1)

/* semop without printing; dies on failure (setup steps). */
static __attribute__((unused)) void sem_do(int id, int num, int op, int flg)
{
	struct sembuf s = { (unsigned short)num, (short)op, (short)flg };
	if (semop(id, &s, 1))
		die("semop");
}

static __attribute__((unused)) void sem_set(int id, int num, int val)
{
	if (semctl(id, num, SETVAL, val))
		die("SETVAL");
}

/* Poll semctl(id, num, cmd) until it returns want, up to 5 s; returns the
 * last value. How a test knows a helper is queued (GETNCNT/GETZCNT) or a
 * wake-up has happened, without timing assumptions. */
static __attribute__((unused)) int sem_settle(int id, int num, int cmd, int want)
{
	struct timespec ts = { 0, 1000 * 1000 };
	int v = -1;
	for (int i = 0; i < 5000; i++) {
		v = semctl(id, num, cmd);
		if (v == want)
			return v;
		nanosleep(&ts, NULL);
	}
	printf("  (semctl(%d, %s) stayed %d, want %d)\n", num,
	       cmd == GETNCNT ? "GETNCNT" : cmd == GETZCNT ? "GETZCNT" :
	       cmd == GETVAL ? "GETVAL" : "?", v, want);
	return v;
}

/* A child that runs the operations and exits with 0 or the errno it got. */
static __attribute__((unused)) pid_t sem_waiter(const char *label, int id,
						const struct sembuf *s, int n,
						const struct timespec *ts)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		struct sembuf copy[64];
		memcpy(copy, s, n * sizeof *s);
		long r = ts ? semtimedop(id, copy, n, ts) : semop(id, copy, n);
		_exit(r == 0 ? 0 : errno);
	}
	sem_label(pid, label);
	return pid;
}

#define WAITER(label, id, ...) sem_waiter(label, id, (struct sembuf[]){ __VA_ARGS__ }, SEMOPS_N(__VA_ARGS__), NULL)

/* Queue a waiter and wait until it is counted (GETNCNT or GETZCNT of num
 * reaches want) and asleep. */
#define QUEUE(label, id, num, cmd, want, ...) ({ \
	pid_t q_ = WAITER(label, id, __VA_ARGS__); \
	sem_settle(id, num, cmd, want); \
	io_wait_sleeping(q_); \
	q_; })

static __attribute__((unused)) void sem_show_exit(const char *who, int st)
{
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		printf("  %s: semop = 0\n", who);
	else if (WIFEXITED(st))
		printf("  %s: semop = -1 %s\n", who, errname(WEXITSTATUS(st)));
	else
		show_status(who, st);
}

/* Reap one labelled waiter and print how its semop ended. */
static __attribute__((unused)) void sem_reap(pid_t pid)
{
	int st;
	pid_t r;
	while ((r = waitpid(pid, &st, 0)) == -1 && errno == EINTR)
		;
	if (r != pid)
		die("waitpid");
	sem_show_exit(sem_pidrel(pid), st);
}

/* Reap the next n children to finish, whichever they are, and print them in
 * label order: which waiters a wake-up released. */
static __attribute__((unused)) void sem_reap_any(int n)
{
	pid_t got[16];
	int sts[16];
	for (int i = 0; i < n; i++) {
		while ((got[i] = waitpid(-1, &sts[i], 0)) == -1 && errno == EINTR)
			;
		if (got[i] < 0)
			die("waitpid");
	}
	for (int l = 0; l < 16; l++)
		for (int i = 0; i < n; i++)
			if (g_sem_labels[l] && got[i] == g_sem_pids[l])
				sem_show_exit(g_sem_labels[l], sts[i]);
	for (int i = 0; i < n; i++) {
		int known = 0;
		for (int l = 0; l < 16; l++)
			known |= g_sem_labels[l] && got[i] == g_sem_pids[l];
		if (!known)
			sem_show_exit("unlabelled child", sts[i]);
	}
}

/* ---- System V message queues (msg_*.c) ---- */
#include <sys/msg.h>

struct msgb {
	long mtype;
	char mtext[16384];
};

/* Results of helper children, one 256-byte line per label slot, in memory
 * shared with them: printed by the parent when it reaps them, so output
 * order never depends on scheduling. */
static char *g_msg_out;

static __attribute__((unused)) void msg_setup(void)
{
	setup();
	g_msg_out = mmap(NULL, 16 * 256, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_msg_out == MAP_FAILED)
		die("mmap");
}

static __attribute__((unused)) const char *msg_flags(int f)
{
	static char buf[96];
	buf[0] = 0;
	if (f & IPC_NOWAIT)
		strcat(buf, "|IPC_NOWAIT");
	if (f & MSG_NOERROR)
		strcat(buf, "|MSG_NOERROR");
	if (f & MSG_EXCEPT)
		strcat(buf, "|MSG_EXCEPT");
	if (f & MSG_COPY)
		strcat(buf, "|MSG_COPY");
	if (f & ~(IPC_NOWAIT | MSG_NOERROR | MSG_EXCEPT | MSG_COPY))
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "|%#x",
			 f & ~(IPC_NOWAIT | MSG_NOERROR | MSG_EXCEPT | MSG_COPY));
	return buf[0] ? buf + 1 : "0";
}

static __attribute__((unused)) void show_msqds(const struct msqid_ds *d)
{
	printf("  key=%#x uid=%u gid=%u cuid=%u cgid=%u mode=%#o seq=%u cbytes=%lu qnum=%lu "
	       "qbytes=%lu lspid=%s lrpid=%s stime=%s rtime=%s ctime=%s\n",
	       (unsigned)d->msg_perm.__key, d->msg_perm.uid, d->msg_perm.gid,
	       d->msg_perm.cuid, d->msg_perm.cgid, d->msg_perm.mode, d->msg_perm.__seq,
	       (unsigned long)d->__msg_cbytes, (unsigned long)d->msg_qnum,
	       (unsigned long)d->msg_qbytes, sem_pidrel(d->msg_lspid), sem_pidrel(d->msg_lrpid),
	       trel(d->msg_stime), trel(d->msg_rtime), trel(d->msg_ctime));
}

/* IPC_STAT and print every field; returns msgctl's result. */
static __attribute__((unused)) int msq_stat_show(int id)
{
	struct msqid_ds d;
	errno = 0;
	int r = msgctl(id, IPC_STAT, &d);
	if (r == -1) {
		printf("  IPC_STAT = -1 %s\n", errname(errno));
		return -1;
	}
	show_msqds(&d);
	return 0;
}

/* qnum and cbytes only. */
static __attribute__((unused)) void msq_count(int id)
{
	struct msqid_ds d;
	errno = 0;
	if (msgctl(id, IPC_STAT, &d) == -1)
		printf("  count: IPC_STAT = -1 %s\n", errname(errno));
	else
		printf("  qnum=%lu cbytes=%lu\n", (unsigned long)d.msg_qnum,
		       (unsigned long)d.__msg_cbytes);
}

/* msgsnd of len bytes of text (a repeated pattern when text is NULL), printed. */
static __attribute__((unused)) long msg_send(int id, long type, const char *text, size_t len, int flg)
{
	static struct msgb b;
	b.mtype = type;
	for (size_t i = 0; i < len && i < sizeof b.mtext; i++)
		b.mtext[i] = text ? text[i] : (char)('a' + i % 26);
	errno = 0;
	long r = msgsnd(id, &b, len, flg);
	int e = errno;
	char what[160];
	snprintf(what, sizeof what, "msgsnd(id, type %ld, %zu bytes, %s)", type, len, msg_flags(flg));
	show_res(what, r, e);
	return r;
}

#define SND(id, type, text, flg) msg_send(id, type, text, strlen(text), flg)

/* The text of a received message: printable if short, else its length and
 * whether it is the msg_send pattern. */
static __attribute__((unused)) void msg_text(char *out, size_t cap, const char *t, long n)
{
	int pattern = 1, printable = 1;
	for (long i = 0; i < n; i++) {
		pattern &= t[i] == (char)('a' + i % 26);
		printable &= t[i] >= 32 && t[i] < 127;
	}
	if (printable && n <= 40)
		snprintf(out, cap, "\"%.*s\"", (int)n, t);
	else
		snprintf(out, cap, "%ld bytes%s", n, pattern ? " of pattern" : " NOT PATTERN");
}

/* msgrcv into a fresh buffer, printed with what came back. */
static __attribute__((unused)) long msg_recv(int id, size_t sz, long type, int flg)
{
	static struct msgb b;
	memset(&b, 0x7f, sizeof b);
	errno = 0;
	long r = msgrcv(id, &b, sz, type, flg);
	int e = errno;
	char what[160], text[96];
	snprintf(what, sizeof what, "msgrcv(id, %zu, type %ld, %s)", sz, type, msg_flags(flg));
	if (r < 0) {
		show_res(what, r, e);
	} else {
		msg_text(text, sizeof text, b.mtext, r);
		printf("%s = %ld mtype=%ld %s\n", what, r, b.mtype, text);
	}
	return r;
}

#define RCV(id, sz, type, flg) msg_recv(id, sz, type, flg)

static __attribute__((unused)) int msg_free_slot(void)
{
	for (int i = 0; i < 16; i++)
		if (!g_sem_labels[i])
			return i;
	die("too many labels");
	return -1;
}

static __attribute__((unused)) int msg_slot_of(pid_t pid)
{
	for (int i = 0; i < 16; i++)
		if (g_sem_labels[i] && g_sem_pids[i] == pid)
			return i;
	return -1;
}

static volatile int g_msg_handled;

static void msg_on_usr1(int sig)
{
	(void)sig;
	g_msg_handled++;
}

/* A child that receives (sz, type, flg) and leaves the outcome in its slot.
 * hflags >= 0 installs a SIGUSR1 handler with those flags first. */
static __attribute__((unused)) pid_t msg_receiver_h(const char *label, int id, size_t sz, long type,
						    int flg, int hflags)
{
	int slot = msg_free_slot();
	g_msg_out[slot * 256] = 0;
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		static struct msgb b;
		if (hflags >= 0)
			io_handler(SIGUSR1, msg_on_usr1, hflags);
		errno = 0;
		long r = msgrcv(id, &b, sz, type, flg);
		int e = errno;
		char *o = g_msg_out + slot * 256;
		if (r < 0) {
			snprintf(o, 256, "msgrcv = -1 %s", errname(e));
		} else {
			char text[96];
			msg_text(text, sizeof text, b.mtext, r);
			snprintf(o, 256, "msgrcv = %ld mtype=%ld %s", r, b.mtype, text);
		}
		if (hflags >= 0)
			snprintf(o + strlen(o), 256 - strlen(o), ", handler ran %d time(s)", g_msg_handled);
		_exit(0);
	}
	sem_label(pid, label);
	return pid;
}

#define RECEIVER(label, id, sz, type, flg) msg_receiver_h(label, id, sz, type, flg, -1)

/* A child that sends len bytes of pattern with type and leaves the outcome in its slot. */
static __attribute__((unused)) pid_t msg_sender_h(const char *label, int id, long type, size_t len,
						  int flg, int hflags)
{
	int slot = msg_free_slot();
	g_msg_out[slot * 256] = 0;
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		static struct msgb b;
		b.mtype = type;
		for (size_t i = 0; i < len; i++)
			b.mtext[i] = (char)('a' + i % 26);
		if (hflags >= 0)
			io_handler(SIGUSR1, msg_on_usr1, hflags);
		errno = 0;
		long r = msgsnd(id, &b, len, flg);
		int e = errno;
		char *o = g_msg_out + slot * 256;
		if (r < 0)
			snprintf(o, 256, "msgsnd = -1 %s", errname(e));
		else
			snprintf(o, 256, "msgsnd = %ld", r);
		if (hflags >= 0)
			snprintf(o + strlen(o), 256 - strlen(o), ", handler ran %d time(s)", g_msg_handled);
		_exit(0);
	}
	sem_label(pid, label);
	return pid;
}

#define SENDER(label, id, type, len, flg) msg_sender_h(label, id, type, len, flg, -1)

/* Start a receiver or sender and wait until it sleeps in its call. */
#define BLOCKED(expr) ({ pid_t b_ = (expr); io_wait_sleeping(b_); b_; })

static __attribute__((unused)) void msg_show_exit(pid_t pid, int st)
{
	int slot = msg_slot_of(pid);
	const char *who = slot >= 0 ? g_sem_labels[slot] : "unlabelled child";
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && slot >= 0)
		printf("  %s: %s\n", who, g_msg_out + slot * 256);
	else
		show_status(who, st);
}

static __attribute__((unused)) void msg_reap(pid_t pid)
{
	int st;
	pid_t r;
	while ((r = waitpid(pid, &st, 0)) == -1 && errno == EINTR)
		;
	if (r != pid)
		die("waitpid");
	msg_show_exit(pid, st);
}

/* Reap the next n children to finish and print them in label order. */
static __attribute__((unused)) void msg_reap_any(int n)
{
	pid_t got[16];
	int sts[16];
	for (int i = 0; i < n; i++) {
		while ((got[i] = waitpid(-1, &sts[i], 0)) == -1 && errno == EINTR)
			;
		if (got[i] < 0)
			die("waitpid");
	}
	for (int l = 0; l < 16; l++)
		for (int i = 0; i < n; i++)
			if (g_sem_labels[l] && got[i] == g_sem_pids[l])
				msg_show_exit(got[i], sts[i]);
	for (int i = 0; i < n; i++)
		if (msg_slot_of(got[i]) < 0)
			show_status("unlabelled child", sts[i]);
}

/* Poll until the queue holds want messages, up to 5 s. */
static __attribute__((unused)) void msg_settle(int id, unsigned long want)
{
	struct timespec ts = { 0, 1000 * 1000 };
	struct msqid_ds d;
	for (int i = 0; i < 5000; i++) {
		if (msgctl(id, IPC_STAT, &d) == 0 && d.msg_qnum == want)
			return;
		nanosleep(&ts, NULL);
	}
	printf("  (qnum stayed %lu, want %lu)\n", (unsigned long)d.msg_qnum, want);
}

/* ---- AF_UNIX sockets and epoll (unix_*.c, epoll_*.c, poll_socket.c) ---- */
#include <sys/socket.h>
#include <sys/un.h>

/* Every socket path lives in this directory of the current directory (the
 * runner's scratch directory), made by sk_setup and removed by sk_cleanup. */
#define SK_DIR "sockets"

/* Abstract names carry a tag unique to this run (other test runs on the
 * machine share the network namespace); sk_name prints it as "TAG". */
static char g_sk_tag[16];

static void sk_cleanup(void);

static __attribute__((unused)) void sk_setup(void)
{
	setup();
	if (mkdir(SK_DIR, 0755)) {
		if (errno != EEXIST)
			die("mkdir " SK_DIR);
		sk_cleanup(); /* left by an earlier run that died in this directory */
		if (mkdir(SK_DIR, 0755))
			die("mkdir " SK_DIR);
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(g_sk_tag, sizeof g_sk_tag, "%08x", (unsigned)(getpid() * 2654435761u ^ ts.tv_nsec));
}

/* Remove everything under SK_DIR, then the directory (main process only). */
static __attribute__((unused)) void sk_cleanup(void)
{
	char path[512];
	if (getpid() != g_main)
		return;
	DIR *d = opendir(SK_DIR);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof path, SK_DIR "/%s", e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(SK_DIR);
}

/* A filesystem address SK_DIR/name; returns its length (family + path + NUL). */
static __attribute__((unused)) socklen_t sk_path(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof a->sun_path, SK_DIR "/%s", name);
	return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

/* An abstract address "\0ipcshim-TAG-name"; returns its length (no NUL counted). */
static __attribute__((unused)) socklen_t sk_abstract(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "ipcshim-%s-%s", g_sk_tag, name);
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

/* An address as deterministic text: its length, then "unnamed", the path, the abstract
 * name with the run's tag as TAG, or "autobind(5 hex)" for a kernel autobind name. */
static __attribute__((unused)) const char *sk_name(const struct sockaddr_un *a, socklen_t len)
{
	static char buf[256];
	size_t off = offsetof(struct sockaddr_un, sun_path);
	if (len < off) {
		snprintf(buf, sizeof buf, "len=%u", (unsigned)len);
		return buf;
	}
	int n = snprintf(buf, sizeof buf, "len=%u family=%s ", (unsigned)len,
			 a->sun_family == AF_UNIX ? "AF_UNIX" : "OTHER");
	size_t plen = len - off;
	if (plen == 0) {
		snprintf(buf + n, sizeof buf - n, "unnamed");
	} else if (a->sun_path[0] != 0) {
		snprintf(buf + n, sizeof buf - n, "path \"%.*s\"", (int)strnlen(a->sun_path, plen), a->sun_path);
	} else {
		const char *p = a->sun_path + 1;
		size_t l = plen - 1;
		int hex = l == 5;
		for (size_t i = 0; i < l && hex; i++)
			hex = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f');
		char tag[32];
		snprintf(tag, sizeof tag, "ipcshim-%s-", g_sk_tag);
		if (hex)
			snprintf(buf + n, sizeof buf - n, "abstract autobind(5 hex)");
		else if (l >= strlen(tag) && !memcmp(p, tag, strlen(tag)))
			snprintf(buf + n, sizeof buf - n, "abstract \"ipcshim-TAG-%.*s\"",
				 (int)(l - strlen(tag)), p + strlen(tag));
		else
			snprintf(buf + n, sizeof buf - n, "abstract, %zu other bytes", l);
	}
	return buf;
}

/* getsockname / getpeername, printed through sk_name. */
static __attribute__((unused)) void sk_show_names(const char *what, int fd)
{
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	memset(&a, 0x55, sizeof a);
	errno = 0;
	if (getsockname(fd, (struct sockaddr *)&a, &len))
		printf("  %s getsockname = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s getsockname: %s\n", what, sk_name(&a, len));
	len = sizeof a;
	memset(&a, 0x55, sizeof a);
	errno = 0;
	if (getpeername(fd, (struct sockaddr *)&a, &len))
		printf("  %s getpeername = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s getpeername: %s\n", what, sk_name(&a, len));
}

static __attribute__((unused)) int sk_socket(int type)
{
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0)
		die("socket");
	return fd;
}

static __attribute__((unused)) void sk_pair(int type, int sv[2])
{
	if (socketpair(AF_UNIX, type, 0, sv))
		die("socketpair");
}

/* The AF_UNIX types, named for case names. */
static __attribute__((unused)) const struct {
	int type;
	const char *name;
} sk_types[3] = { { SOCK_STREAM, "stream" }, { SOCK_SEQPACKET, "seqpacket" }, { SOCK_DGRAM, "dgram" } };

/* fn("pair_TYPE", sv[0], sv[1]) over a fresh socketpair of each type. */
static __attribute__((unused)) void sk_each_pair(void (*fn)(const char *name, int a, int b))
{
	for (size_t i = 0; i < 3; i++) {
		int sv[2];
		char name[64];
		snprintf(name, sizeof name, "pair_%s", sk_types[i].name);
		sk_pair(sk_types[i].type, sv);
		fn(name, sv[0], sv[1]);
		closep(sv);
	}
}

/* A socket of type bound to addr (and listening with backlog if backlog >= 0). */
static __attribute__((unused)) int sk_listener(int type, const struct sockaddr_un *a, socklen_t len,
						int backlog)
{
	int fd = sk_socket(type);
	if (bind(fd, (const struct sockaddr *)a, len))
		die("bind");
	if (backlog >= 0 && listen(fd, backlog))
		die("listen");
	return fd;
}

/* A socket of type connected to addr. */
static __attribute__((unused)) int sk_connect(int type, const struct sockaddr_un *a, socklen_t len)
{
	int fd = sk_socket(type);
	if (connect(fd, (const struct sockaddr *)a, len))
		die("connect");
	return fd;
}

/* An accept that must succeed. */
static __attribute__((unused)) int sk_accept(int l)
{
	int fd;
	while ((fd = accept(l, NULL, NULL)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		die("accept");
	return fd;
}

/* A listener (backlog 4) of type bound to SK_DIR/name in *a, a client connected to it and the
 * accepted socket; returns the address's length. */
static __attribute__((unused)) socklen_t sk_named_pair(int type, const char *name, struct sockaddr_un *a,
							 int *l, int *c, int *s)
{
	socklen_t la = sk_path(a, name);
	*l = sk_listener(type, a, la, 4);
	*c = sk_connect(type, a, la);
	*s = sk_accept(*l);
	return la;
}

/* recv (flags), printed with the data as text when printable. */
static __attribute__((unused)) long sk_recv(const char *what, int fd, size_t len, int flags)
{
	char buf[512];
	memset(buf, 0, sizeof buf);
	errno = 0;
	long n = recv(fd, buf, len < sizeof buf ? len : sizeof buf, flags);
	int e = errno;
	if (n < 0) {
		printf("  %s = -1 %s\n", what, errname_io(e));
	} else {
		long shown = n < (long)sizeof buf ? n : (long)sizeof buf;
		int printable = 1;
		for (long i = 0; i < shown; i++)
			printable &= buf[i] >= 32 && buf[i] < 127;
		if (printable)
			printf("  %s = %ld \"%.*s\"\n", what, n, (int)shown, buf);
		else
			printf("  %s = %ld (binary)\n", what, n);
	}
	return n;
}

/* getsockopt of an int option, printed. */
static __attribute__((unused)) void sk_show_opt(const char *what, int fd, int level, int name)
{
	int v = -12345;
	socklen_t len = sizeof v;
	errno = 0;
	if (getsockopt(fd, level, name, &v, &len))
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %d (optlen %u)\n", what, v, (unsigned)len);
}

/* The msghdr flags of a recvmsg, as names. */
static __attribute__((unused)) const char *sk_msgflags(int f)
{
	static char buf[128];
	buf[0] = 0;
	static const struct { int bit; const char *name; } names[] = {
		{ MSG_TRUNC, "MSG_TRUNC" }, { MSG_CTRUNC, "MSG_CTRUNC" }, { MSG_EOR, "MSG_EOR" },
		{ MSG_OOB, "MSG_OOB" }, { MSG_ERRQUEUE, "MSG_ERRQUEUE" }, { MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC" },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (f & names[i].bit) {
			if (buf[0])
				strcat(buf, "|");
			strcat(buf, names[i].name);
			f &= ~names[i].bit;
		}
	if (f)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%#x", buf[0] ? "|" : "", f);
	return buf[0] ? buf : "0";
}

/* Send one fd (or several) with SCM_RIGHTS and a payload of len bytes; returns sendmsg's result. */
static __attribute__((unused)) long sk_send_fds(int s, const int *fds, int nfds, const char *data, size_t len)
{
	struct msghdr m;
	struct iovec io = { (void *)data, len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 256)];
		struct cmsghdr align;
	} u;
	memset(&m, 0, sizeof m);
	memset(&u, 0, sizeof u);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	return sendmsg(s, &m, 0);
}

/* sendmsg of len bytes of data with one control message (level, type) whose cmsg_len is
 * CMSG_LEN(plen) and whose payload is plen bytes of payload (fewer when NULL). */
static __attribute__((unused)) long sk_send_cmsg(int s, const char *data, size_t len, int type,
						 const void *payload, size_t plen, int flags)
{
	struct msghdr m;
	struct iovec io = { (void *)data, len };
	union {
		char buf[CMSG_SPACE(64)];
		struct cmsghdr align;
	} u;
	memset(&m, 0, sizeof m);
	memset(&u, 0, sizeof u);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = CMSG_SPACE(plen);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(plen);
	if (payload)
		memcpy(CMSG_DATA(c), payload, plen);
	return sendmsg(s, &m, flags);
}

/* Receive into data (cap bytes) and up to 16 fds; *nfds is set to the fds received, *mflags
 * to msg_flags. ctl_fds limits the control buffer (CMSG_SPACE of that many ints; 0 = none). */
static __attribute__((unused)) long sk_recv_fds(int s, char *data, size_t cap, int *fds, int *nfds,
						int ctl_fds, int flags, int *mflags)
{
	struct msghdr m;
	struct iovec io = { data, cap };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} u;
	memset(&m, 0, sizeof m);
	memset(&u, 0, sizeof u);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	m.msg_control = ctl_fds ? u.buf : NULL;
	m.msg_controllen = ctl_fds ? CMSG_SPACE(sizeof(int) * ctl_fds) : 0;
	*nfds = 0;
	long r = recvmsg(s, &m, flags);
	if (r < 0)
		return r;
	*mflags = m.msg_flags;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds + *nfds, CMSG_DATA(c), sizeof(int) * k);
			*nfds += k;
		}
	return r;
}

/* What an fd is, for printing: "pipe", "socket", "regular file", ... */
static __attribute__((unused)) const char *sk_fdkind(int fd)
{
	struct stat st;
	if (fstat(fd, &st))
		return errname_io(errno);
	switch (st.st_mode & S_IFMT) {
	case S_IFIFO: return "pipe";
	case S_IFSOCK: return "socket";
	case S_IFREG: return "regular file";
	case S_IFCHR: return "char device";
	}
	return "other";
}

/* Wait up to 5 s until fd is readable (poll), so a case never depends on how fast
 * another process delivers. */
static __attribute__((unused)) void sk_wait_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, 5000) != 1)
		printf("  (fd not readable after 5 s)\n");
}

#include <sys/epoll.h>

/* epoll event bits as names, "0" when none. */
static __attribute__((unused)) const char *epbits(unsigned ev)
{
	static char buf[200];
	static const struct bitname names[] = {
		{ EPOLLIN, "EPOLLIN" }, { EPOLLPRI, "EPOLLPRI" }, { EPOLLOUT, "EPOLLOUT" },
		{ EPOLLERR, "EPOLLERR" }, { EPOLLHUP, "EPOLLHUP" }, { EPOLLRDNORM, "EPOLLRDNORM" },
		{ EPOLLRDBAND, "EPOLLRDBAND" }, { EPOLLWRNORM, "EPOLLWRNORM" },
		{ EPOLLWRBAND, "EPOLLWRBAND" }, { EPOLLMSG, "EPOLLMSG" }, { EPOLLRDHUP, "EPOLLRDHUP" },
	};
	return bits_text(buf, sizeof buf, ev, names, sizeof names / sizeof names[0]);
}

/* EPOLL_CTL_ADD of fd with events and tag that must succeed (setup, not a case). */
static __attribute__((unused)) void ep_add(int ep, int fd, unsigned events, unsigned long tag)
{
	struct epoll_event e;
	memset(&e, 0, sizeof e);
	e.events = events;
	e.data.u64 = tag;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
		die("epoll_ctl ADD");
}

/* epoll_ctl with events and data.u64 = tag, printed. */
static __attribute__((unused)) long ep_ctl(const char *what, int ep, int op, int fd, unsigned events,
					   unsigned long tag)
{
	struct epoll_event e;
	memset(&e, 0, sizeof e);
	e.events = events;
	e.data.u64 = tag;
	errno = 0;
	long r = epoll_ctl(ep, op, fd, &e);
	show_io(what, r, errno);
	return r;
}

/* Each event's tag and bits, in the order given, ending the line. */
static __attribute__((unused)) void ep_print(const struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++)
		printf("%s tag %lu: %s", i ? "," : "", (unsigned long)ev[i].data.u64, epbits(ev[i].events));
	printf("\n");
}

/* epoll_wait(ep, max, timeout), printing the events in the order the call returned them. */
static __attribute__((unused)) int ep_ordered(const char *what, int ep, int max, int timeout)
{
	struct epoll_event ev[16];
	errno = 0;
	int n = epoll_wait(ep, ev, max, timeout);
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else {
		printf("  %s = %d", what, n);
		ep_print(ev, n);
	}
	return n;
}

/* epoll_wait(ep, max, timeout) and print each event's tag and bits. */
static __attribute__((unused)) int ep_show(const char *what, int ep, int max, int timeout)
{
	struct epoll_event ev[16];
	memset(ev, 0, sizeof ev);
	errno = 0;
	int n = epoll_wait(ep, ev, max, timeout);
	if (n < 0) {
		printf("  %s = -1 %s\n", what, errname_io(errno));
		return n;
	}
	printf("  %s = %d", what, n);
	/* In tag order: which events one call returns is what these tests look at (epoll_scale
	 * checks the ready list's order). */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ev[j - 1].data.u64 > ev[j].data.u64; j--) {
			struct epoll_event t = ev[j];
			ev[j] = ev[j - 1];
			ev[j - 1] = t;
		}
	ep_print(ev, n);
	return n;
}

#endif
