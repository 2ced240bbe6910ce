/* Served calls on small stacks (issue 20). The kernel needs no user stack for a system call;
 * the shim serves calls on the caller's stack, through the SIGSYS handler or an exported
 * symbol. Every served call is made from a thread whose stack is 16 KiB
 * (pthread_attr_setstacksize, with glibc's guard page below it: an overflow kills), with
 * large arguments (1024 iovecs, 1024-entry poll sets, full fd_sets, maxevents 1024, SCM_RIGHTS)
 * and blocking waits woken by a helper process; then an application handler with SA_ONSTACK
 * makes served calls on a 64 KiB sigaltstack, also nested in a served wait it interrupted, and
 * one longjmps out of a served wait. Each call's stack use is measured (the stack below the
 * caller is painted first) and must stay within the budget the README states: 4 KiB of shim
 * frames, plus the kernel's signal frame (AT_MINSIGSTKSZ) for a call the catch-all traps; on
 * the altstack, two signal frames and the handler's own. The program then runs itself again
 * with IPCSHIM_TRACE=/dev/null (unless a trace is on already: `ipcshim diff`), so that under
 * the shim every call is also traced (formatted) on the small stack. */
#include "common.h"
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/auxv.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/uio.h>

#define SMALL_STACK (16 * 1024)
#define ALT_STACK (64 * 1024)
/* The shim's frames, as the README states it. */
#define BUDGET 4096
/* The test's own expression, glibc's wrapper and the red zone. */
#define SLACK 512
#define NIOV 1024
#define NPIPES 200
#define PAINT 0x5a

static char *g_lo;	/* lowest byte of the stack being measured */
static long g_limit;	/* what one call may use of it */
static long g_over;	/* calls over the limit since the last check */

static __attribute__((noinline)) void paint(char *hi)
{
	for (volatile char *p = g_lo; p < hi; p++)
		*p = PAINT;
}

/* The lowest byte below hi that is no longer the paint. */
static __attribute__((noinline)) char *touched(char *hi)
{
	char *p = g_lo;
	while (p < hi && *(volatile char *)p == PAINT)
		p++;
	return p;
}

static void note(const char *what, long used)
{
	if (used > g_limit) {
		printf("  stack: %s used %ld bytes, over %ld\n", what, used, g_limit);
		g_over++;
	}
}

#define SP() ({ char *sp_; __asm__ volatile("mov %%rsp, %0" : "=r"(sp_)); sp_; })

/* Evaluates expr (one system call) with the stack below painted and checks how much of it
 * the call used; errno is kept. */
#define M(expr) ({ char *sp_ = SP(); paint(sp_ - 256); errno = 0; long r_ = (long)(expr); \
	int e_ = errno; note(#expr, sp_ - touched(sp_ - 256)); errno = e_; r_; })

/* M, printed with its result. */
#define S(expr) ({ long s_ = M(expr); show_io("  " #expr, s_, errno); s_; })

/* A call given a bad pointer: the shim's copy faults, and the fault's signal frame comes on
 * top (the kernel needs none for its EFAULT either). */
#define FAULT(expr) ({ long l_ = g_limit; g_limit += (long)getauxval(AT_MINSIGSTKSZ) + SLACK; \
	long f_ = S(expr); g_limit = l_; f_; })

static void budget_check(void)
{
	if (!g_over)
		printf("  stack within budget\n");
	g_over = 0;
}

/* A system call by the syscall instruction: the catch-all's path under the shim (glibc's
 * syscall() is an exported symbol of the shim). */
static long raw(long nr, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if (r < 0 && r > -4096) {
		errno = -r;
		return -1;
	}
	return r;
}
#define R(nr, a, b, c, d, e, f) raw(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* ---- a helper process that acts after a delay (a process, not a thread: `ipcshim diff`
 * compares each process's calls in order) ---- */

struct later {
	pid_t pid;
};

static void later(struct later *l, int ms, void (*fn)(long), long arg)
{
	fflush(stdout);
	l->pid = fork();
	if (l->pid < 0)
		die("fork");
	if (l->pid == 0) {
		usleep(ms * 1000);
		fn(arg);
		_exit(0);
	}
}

static void join(struct later *l)
{
	int st;
	if (waitpid(l->pid, &st, 0) != l->pid || !WIFEXITED(st) || WEXITSTATUS(st))
		die("helper");
}

static void put_byte(long fd)
{
	if (write(fd, "w", 1) != 1)
		die("helper write");
}

/* Reads what the pipe or socket holds, in 64 KiB reads, until one is short. */
static void drain(long fd)
{
	static char sink[65536];
	while (read(fd, sink, sizeof sink) == sizeof sink)
		;
}

static int g_semid, g_msqid;
static pid_t g_pid, g_tid;

static void sem_post1(long n)
{
	struct sembuf op = { (unsigned short)n, 1, 0 };
	if (semop(g_semid, &op, 1))
		die("helper semop");
}

static void msg_put(long type)
{
	struct { long type; char text[16]; } m = { type, "later" };
	if (msgsnd(g_msqid, &m, 5, 0))
		die("helper msgsnd");
}

static struct sockaddr_un g_addr;
static socklen_t g_alen;

/* Connects to g_addr, then sends a byte twice, 30 ms apart. */
static void connect_one(long unused)
{
	(void)unused;
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&g_addr, g_alen))
		die("helper connect");
	for (int i = 0; i < 2; i++) {
		usleep(30000);
		put_byte(c);
	}
}

static void kill_small(long sig)
{
	syscall(SYS_tgkill, g_pid, g_tid, sig);
}

/* ---- the calls ---- */

static char g_buf[65536];
/* Mapped nowhere, but a user address: the copy faults. */
static char *volatile g_bad = (char *)1;
static struct iovec g_iov[NIOV];

/* g_iov: NIOV iovecs of one byte each, into g_buf. */
static struct iovec *iov1(void)
{
	for (int i = 0; i < NIOV; i++) {
		g_iov[i].iov_base = g_buf + i;
		g_iov[i].iov_len = 1;
	}
	return g_iov;
}

static void pipes(void)
{
	CASE("pipe_calls");
	int p[2], q[2];
	S(pipe(p));
	S(pipe2(q, O_CLOEXEC | O_NONBLOCK));
	S(write(p[1], "hello", 5));
	S(read(p[0], g_buf, sizeof g_buf));
	S(R(SYS_write, p[1], "raw", 3, 0, 0, 0));
	S(R(SYS_read, p[0], g_buf, sizeof g_buf, 0, 0, 0));
	memset(g_buf, 'v', NIOV);
	S(writev(p[1], iov1(), NIOV));
	S(readv(p[0], iov1(), NIOV));
	S(R(SYS_writev, p[1], iov1(), NIOV, 0, 0, 0));
	S(R(SYS_readv, p[0], iov1(), NIOV, 0, 0, 0));
	S(R(SYS_pwritev2, p[1], iov1(), NIOV, -1, -1, 0));
	S(R(SYS_preadv2, p[0], iov1(), NIOV, -1, -1, 0));
	S(R(SYS_readv, p[0], iov1(), NIOV + 1, 0, 0, 0));
	S(write(p[1], "data", 4));
	FAULT(read(p[0], g_bad, 4));
	FAULT(R(SYS_read, p[0], g_bad, 4, 0, 0, 0));
	FAULT(R(SYS_write, p[1], g_bad, 4, 0, 0, 0));
	struct iovec bad[2] = { { g_buf, 1 }, { g_bad, 1 } };
	FAULT(R(SYS_writev, p[1], bad, 2, 0, 0, 0));
	FAULT(R(SYS_readv, p[0], g_bad, NIOV, 0, 0, 0));
	FAULT(R(SYS_poll, g_bad, 2, 0, 0, 0, 0));
	S(read(p[0], g_buf, sizeof g_buf));
	S(read(q[0], g_buf, 1));
	S(fcntl(p[0], F_GETFL) & O_ACCMODE);
	S(fcntl(p[1], F_SETFL, O_NONBLOCK));
	S(fcntl(p[1], F_GETPIPE_SZ));
	S(fcntl(p[1], F_SETPIPE_SZ, 8192));
	S(write(p[1], "abc", 3));
	int n = -1;
	S(ioctl(p[0], FIONREAD, &n));
	printf("  FIONREAD: %d\n", n);
	S(R(SYS_ioctl, p[0], FIONREAD, &n, 0, 0, 0));
	int d = M(dup(p[0]));
	printf("  dup: %s\n", d >= 0 ? "ok" : "failed");
	S(dup2(p[0], 900));
	S(dup3(p[0], 901, O_CLOEXEC));
	S(fcntl(p[0], F_DUPFD, 902) >= 902);
	S(read(900, g_buf, 1));
	S(R(SYS_close_range, 900, 902, 0, 0, 0, 0));
	S(close(d));
	S(close(q[0]));
	S(R(SYS_close, q[1], 0, 0, 0, 0, 0));
	/* A blocking read, woken by the helper. */
	struct later l;
	S(read(p[0], g_buf, 2));
	S(fcntl(p[0], F_SETFL, 0));
	later(&l, 30, put_byte, p[1]);
	S(read(p[0], g_buf, 1));
	join(&l);
	later(&l, 30, put_byte, p[1]);
	S(R(SYS_readv, p[0], iov1(), NIOV, 0, 0, 0));
	join(&l);
	/* A blocking write into a full pipe, room made by the helper. */
	S(fcntl(p[1], F_SETFL, 0));
	S(write(p[1], g_buf, 8192));
	later(&l, 30, drain, p[0]);
	S(R(SYS_write, p[1], g_buf, 4096, 0, 0, 0));
	join(&l);
	/* An exec that fails after the shim looked at the file. */
	S(execl("/dev/null", "null", (char *)NULL));
	S(R(SYS_execve, "/dev/null", NULL, NULL, 0, 0, 0));
	S(close(p[0]));
	S(close(p[1]));
	budget_check();
}

static void polls(void)
{
	CASE("poll_select_large_sets");
	static int ends[NPIPES][2];
	static struct pollfd fds[1024];
	for (int i = 0; i < NPIPES; i++)
		if (pipe(ends[i]))
			die("pipe");
	for (int i = 0; i < NPIPES; i += 3)
		if (write(ends[i][1], "r", 1) != 1)
			die("write");
	for (int i = 0; i < 1024; i++) {
		fds[i].fd = ends[i % NPIPES][i / NPIPES % 2];
		fds[i].events = POLLIN | POLLOUT;
	}
	S(poll(fds, 1024, 0));
	S(R(SYS_poll, fds, 1024, 0, 0, 0, 0));
	struct timespec ts = { 0, 1000000 };
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	S(ppoll(fds, 1024, &ts, &mask));
	S(R(SYS_ppoll, fds, 1024, &ts, &mask, 8, 0));
	fd_set r, w, x;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	for (int i = 0; i < NPIPES; i++) {
		FD_SET(ends[i][0], &r);
		FD_SET(ends[i][0], &x);
		FD_SET(ends[i][1], &w);
	}
	if (dup2(ends[0][0], 1000) != 1000)
		die("dup2");
	FD_SET(1000, &r);
	const fd_set r0 = r, w0 = w, x0 = x;
	struct timeval tv = { 0, 0 };
	S(select(1001, &r, &w, &x, &tv));
	r = r0, w = w0, x = x0;
	S(R(SYS_select, 1001, &r, &w, &x, &tv, 0));
	r = r0, w = w0;
	struct { const sigset_t *ss; size_t len; } data = { &mask, 8 };
	S(pselect(1001, &r, &w, NULL, &ts, &mask));
	r = r0, w = w0;
	S(R(SYS_pselect6, 1001, &r, &w, NULL, &ts, &data));
	/* Blocking, woken by the helper. */
	struct later l;
	for (int i = 0; i < 1024; i++)
		fds[i] = (struct pollfd){ ends[1 + i % 2 * 3][0], POLLIN, 0 };
	/* How many are ready when a blocked poll returns depends on where its last scan was when
	 * the byte came (on the kernel too): each blocking call is followed by a count. */
	later(&l, 30, put_byte, ends[1][1]);
	S(poll(fds, 1024, 5000) > 0);
	join(&l);
	S(poll(fds, 1024, 0));
	S(read(ends[1][0], g_buf, 1));
	later(&l, 30, put_byte, ends[4][1]);
	S(R(SYS_ppoll, fds, 1024, NULL, NULL, 0, 0) > 0);
	join(&l);
	S(poll(fds, 1024, 0));
	S(read(ends[4][0], g_buf, 1));
	/* With a kernel fd too: the shim sleeps in the kernel in slices. */
	int ev = eventfd(0, 0);
	fds[1023] = (struct pollfd){ ev, POLLIN, 0 };
	later(&l, 30, put_byte, ends[4][1]);
	S(poll(fds, 1024, 5000) > 0);
	join(&l);
	S(poll(fds, 1024, 0));
	S(read(ends[4][0], g_buf, 1));
	close(ev);
	FD_ZERO(&r);
	FD_SET(ends[1][0], &r);
	FD_SET(ends[2][0], &r);
	later(&l, 30, put_byte, ends[1][1]);
	S(select(1001, &r, NULL, NULL, NULL));
	join(&l);
	for (int i = 0; i < NPIPES; i++) {
		close(ends[i][0]);
		close(ends[i][1]);
	}
	close(1000);
	budget_check();
}

static void epolls(void)
{
	CASE("epoll_big_maxevents");
	static int ends[100][2];
	static struct epoll_event out[1024];
	int e = M(epoll_create(8));
	int e1 = M(epoll_create1(EPOLL_CLOEXEC));
	int ev = eventfd(1, 0);
	printf("  epoll fds: %s\n", e >= 0 && e1 >= 0 && ev >= 0 ? "ok" : "failed");
	for (int i = 0; i < 100; i++) {
		if (pipe(ends[i]) || write(ends[i][1], "e", 1) != 1)
			die("pipe");
		struct epoll_event one = { EPOLLIN, { .u64 = i } };
		if (M(epoll_ctl(e, EPOLL_CTL_ADD, ends[i][0], &one)))
			die("epoll_ctl");
	}
	struct epoll_event one = { EPOLLIN, { .u64 = 1000 } };
	S(epoll_ctl(e, EPOLL_CTL_ADD, ev, &one));
	S(R(SYS_epoll_ctl, e, EPOLL_CTL_ADD, ends[0][1], &one, 0, 0));
	one.events = EPOLLOUT;
	S(epoll_ctl(e, EPOLL_CTL_MOD, ends[0][1], &one));
	S(epoll_ctl(e, EPOLL_CTL_DEL, ends[0][1], NULL));
	S(epoll_wait(e, out, 1024, 0));
	S(R(SYS_epoll_wait, e, out, 1024, 0, 0, 0));
	sigset_t mask;
	sigemptyset(&mask);
	S(epoll_pwait(e, out, 1024, 0, &mask));
	struct timespec ts = { 0, 0 };
	S(R(SYS_epoll_pwait2, e, out, 1024, &ts, &mask, 8));
	S(epoll_wait(e1, out, 1024, 0));
	/* Blocking on a set of pipes only, woken by the helper. */
	for (int i = 0; i < 100; i++)
		if (read(ends[i][0], g_buf, 1) != 1)
			die("read");
	S(epoll_ctl(e, EPOLL_CTL_DEL, ev, NULL));
	struct later l;
	later(&l, 30, put_byte, ends[7][1]);
	int n = M(epoll_wait(e, out, 1024, 5000));
	printf("  epoll_wait = %d, data %llu\n", n, n == 1 ? (unsigned long long)out[0].data.u64 : 0ULL);
	join(&l);
	S(read(ends[7][0], g_buf, 1));
	later(&l, 30, put_byte, ends[9][1]);
	S(R(SYS_epoll_pwait2, e, out, 1024, NULL, &mask, 8));
	join(&l);
	S(read(ends[9][0], g_buf, 1));
	/* With a kernel fd in the set too. */
	one.events = EPOLLIN;
	S(epoll_ctl(e, EPOLL_CTL_ADD, ev, &one));
	uint64_t count;
	S(read(ev, &count, sizeof count));
	later(&l, 30, put_byte, ends[11][1]);
	S(epoll_wait(e, out, 1024, 5000));
	join(&l);
	for (int i = 0; i < 100; i++) {
		close(ends[i][0]);
		close(ends[i][1]);
	}
	S(close(e));
	S(close(e1));
	close(ev);
	budget_check();
}

/* A msghdr of NIOV one-byte iovecs, with the fds as SCM_RIGHTS if nfds > 0. */
static void fill_msg(struct msghdr *m, struct iovec *iov, void *ctl, const int *fds, int nfds)
{
	memset(m, 0, sizeof *m);
	for (int i = 0; i < NIOV; i++)
		iov[i] = (struct iovec){ g_buf + i, 1 };
	m->msg_iov = iov;
	m->msg_iovlen = NIOV;
	if (nfds) {
		m->msg_control = ctl;
		m->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
}

/* The fds a received msghdr carries, closed; how many. */
static int close_received(struct msghdr *m)
{
	int k = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++, k++)
				close(((int *)CMSG_DATA(c))[i]);
	return k;
}

static void sockets(void)
{
	CASE("socket_calls");
	static struct iovec iovs[4][NIOV];
	static union { char b[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr a; } ctl[4];
	int sv[2], dv[2], qv[2], p[2];
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(socketpair(AF_UNIX, SOCK_DGRAM, 0, dv));
	S(R(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET, 0, qv, 0, 0));
	if (pipe(p))
		die("pipe");
	S(send(sv[0], "abc", 3, 0));
	S(recv(sv[1], g_buf, sizeof g_buf, 0));
	S(sendto(dv[0], "dgram", 5, 0, NULL, 0));
	S(recvfrom(dv[1], g_buf, sizeof g_buf, 0, NULL, NULL));
	S(R(SYS_sendto, qv[0], "seq", 3, 0, 0, 0));
	S(R(SYS_recvfrom, qv[1], g_buf, sizeof g_buf, MSG_DONTWAIT, 0, 0));
	struct msghdr m;
	int fds[2] = { p[0], p[1] };
	memset(g_buf, 'm', NIOV);
	fill_msg(&m, iovs[0], ctl[0].b, fds, 2);
	S(sendmsg(sv[0], &m, 0));
	fill_msg(&m, iovs[0], ctl[0].b, fds, 2);
	S(recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC));
	printf("  fds received: %d\n", close_received(&m));
	fill_msg(&m, iovs[0], ctl[0].b, fds, 1);
	S(R(SYS_sendmsg, qv[0], &m, 0, 0, 0, 0));
	fill_msg(&m, iovs[0], ctl[0].b, fds, 2);
	S(R(SYS_recvmsg, qv[1], &m, 0, 0, 0, 0));
	printf("  fds received: %d\n", close_received(&m));
	struct mmsghdr mm[4];
	for (int i = 0; i < 4; i++)
		fill_msg(&mm[i].msg_hdr, iovs[i], ctl[i].b, fds, i % 3);
	S(sendmmsg(sv[0], mm, 4, 0));
	for (int i = 0; i < 4; i++)
		fill_msg(&mm[i].msg_hdr, iovs[i], ctl[i].b, fds, 4);
	struct timespec ts = { 1, 0 };
	int got = M(recvmmsg(sv[1], mm, 4, MSG_WAITALL, &ts));
	printf("  recvmmsg = %d:", got);
	for (int i = 0; i < got; i++)
		printf(" %u bytes %d fds", mm[i].msg_len, close_received(&mm[i].msg_hdr));
	printf("\n");
	for (int i = 0; i < 4; i++)
		fill_msg(&mm[i].msg_hdr, iovs[i], ctl[i].b, fds, 0);
	S(R(SYS_sendmmsg, qv[0], mm, 4, 0, 0, 0));
	S(R(SYS_recvmmsg, qv[1], mm, 4, MSG_DONTWAIT, 0, 0));
	int v = 0;
	socklen_t len = sizeof v;
	S(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len));
	printf("  SO_TYPE: %d\n", v);
	struct timeval tv = { 2, 0 };
	S(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	S(R(SYS_getsockopt, sv[1], SOL_SOCKET, SO_ERROR, &v, &len, 0));
	S(ioctl(sv[1], FIONREAD, &v));
	S(ioctl(sv[0], SIOCOUTQ, &v));
	/* Named: socket, bind, listen, connect, accept; a blocking accept and recv. */
	g_alen = sk_path(&g_addr, "small");
	int l = M(socket(AF_UNIX, SOCK_STREAM, 0));
	S(bind(l, (struct sockaddr *)&g_addr, g_alen));
	S(listen(l, 8));
	int c = M(socket(AF_UNIX, SOCK_STREAM, 0));
	S(connect(c, (struct sockaddr *)&g_addr, g_alen));
	int a = M(accept(l, NULL, NULL));
	printf("  accepted: %s\n", a >= 0 ? "yes" : "no");
	S(send(c, "named", 5, 0));
	S(R(SYS_recvfrom, a, g_buf, sizeof g_buf, 0, 0, 0));
	struct later lt;
	later(&lt, 30, connect_one, 0);
	int a2 = M(accept4(l, NULL, NULL, SOCK_CLOEXEC));
	printf("  accept4 after a wait: %s\n", a2 >= 0 ? "yes" : "no");
	S(recv(a2, g_buf, 1, 0));
	fill_msg(&m, iovs[0], NULL, NULL, 0);
	S(R(SYS_recvmsg, a2, &m, 0, 0, 0, 0));
	join(&lt);
	int d = M(socket(AF_UNIX, SOCK_DGRAM, 0));
	int d2 = M(R(SYS_socket, AF_UNIX, SOCK_DGRAM, 0, 0, 0, 0));
	struct sockaddr_un da;
	socklen_t dlen = sk_path(&da, "small-dgram");
	S(bind(d, (struct sockaddr *)&da, dlen));
	S(sendto(d2, "to name", 7, 0, (struct sockaddr *)&da, dlen));
	S(R(SYS_sendto, d, "to self", 7, 0, &da, dlen));
	S(recv(d, g_buf, sizeof g_buf, 0));
	S(shutdown(sv[0], SHUT_WR));
	S(recv(sv[1], g_buf, sizeof g_buf, 0));
	S(R(SYS_shutdown, qv[0], SHUT_RDWR, 0, 0, 0, 0));
	int all[] = { sv[0], sv[1], dv[0], dv[1], qv[0], qv[1], p[0], p[1], l, c, a, a2, d, d2 };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		M(close(all[i]));
	budget_check();
}

static void sysv(void)
{
	CASE("sysv_calls");
	static unsigned short vals[250];
	static struct sembuf ops[64];
	struct semid_ds sds;
	struct seminfo si;
	g_semid = M(semget(IPC_PRIVATE, 250, 0600));
	printf("  semget: %s\n", g_semid >= 0 ? "ok" : "failed");
	for (int i = 0; i < 64; i++)
		ops[i] = (struct sembuf){ (unsigned short)i, 1, SEM_UNDO };
	S(semop(g_semid, ops, 64));
	S(R(SYS_semop, g_semid, ops, 1, 0, 0, 0));
	S(semctl(g_semid, 0, GETALL, vals));
	printf("  vals: %u %u %u\n", vals[0], vals[63], vals[64]);
	S(semctl(g_semid, 0, SETALL, vals));
	S(semctl(g_semid, 0, IPC_STAT, &sds));
	S(semctl(g_semid, 0, SEM_INFO, &si) >= 0);
	S(R(SYS_semctl, g_semid, 5, SETVAL, 3, 0, 0));
	S(semctl(g_semid, 5, GETVAL));
	struct timespec ts = { 0, 10000000 };
	struct sembuf down = { 100, -1, 0 };
	S(semtimedop(g_semid, &down, 1, &ts));
	struct later l;
	later(&l, 30, sem_post1, 100);
	S(semop(g_semid, &down, 1));
	join(&l);
	later(&l, 30, sem_post1, 100);
	S(R(SYS_semtimedop, g_semid, &down, 1, NULL, 0, 0));
	join(&l);
	S(semctl(g_semid, 0, IPC_RMID));

	static struct { long type; char text[8192]; } msg;
	struct msqid_ds mds;
	struct msginfo mi;
	g_msqid = M(msgget(IPC_PRIVATE, 0600));
	printf("  msgget: %s\n", g_msqid >= 0 ? "ok" : "failed");
	msg.type = 3;
	memset(msg.text, 'q', sizeof msg.text);
	S(msgsnd(g_msqid, &msg, 8000, 0));
	S(R(SYS_msgsnd, g_msqid, &msg, 64, 0, 0, 0));
	S(msgrcv(g_msqid, &msg, sizeof msg.text, 0, 0));
	S(R(SYS_msgrcv, g_msqid, &msg, sizeof msg.text, -5, IPC_NOWAIT, 0));
	later(&l, 30, msg_put, 7);
	S(msgrcv(g_msqid, &msg, sizeof msg.text, 7, 0));
	join(&l);
	S(msgctl(g_msqid, IPC_STAT, &mds));
	S(msgctl(g_msqid, MSG_INFO, (struct msqid_ds *)&mi) >= 0);
	S(msgctl(g_msqid, IPC_RMID, NULL));

	struct shmid_ds shd;
	struct shm_info shi;
	int shm = M(shmget(IPC_PRIVATE, 65536, 0600));
	printf("  shmget: %s\n", shm >= 0 ? "ok" : "failed");
	char *at = (char *)M(shmat(shm, NULL, 0));
	printf("  shmat: %s\n", at != (char *)-1 ? "ok" : "failed");
	at[0] = 1;
	long raw_at = M(syscall(SYS_shmat, shm, 0, SHM_RDONLY));
	printf("  syscall(SYS_shmat): %s\n", raw_at != -1 ? "ok" : "failed");
	S(shmctl(shm, IPC_STAT, &shd));
	printf("  nattch: %lu\n", (unsigned long)shd.shm_nattch);
	S(shmctl(shm, SHM_INFO, (struct shmid_ds *)&shi) >= 0);
	S(shmdt(at));
	S(syscall(SYS_shmdt, raw_at));
	S(shmctl(shm, IPC_RMID, NULL));
	/* The same through raw syscall instructions: the catch-all's SIGSYS path. */
	shm = M(R(SYS_shmget, IPC_PRIVATE, 65536, 0600, 0, 0, 0));
	raw_at = M(R(SYS_shmat, shm, 0, 0, 0, 0, 0));
	printf("  raw shmat: %s\n", raw_at > 0 ? "ok" : "failed");
	S(R(SYS_shmctl, shm, IPC_STAT, &shd, 0, 0, 0));
	S(R(SYS_shmctl, shm, SHM_INFO, &shi, 0, 0, 0) >= 0);
	S(R(SYS_shmdt, raw_at, 0, 0, 0, 0, 0));
	S(R(SYS_shmctl, shm, IPC_RMID, 0, 0, 0, 0));
	budget_check();
}

static void procfs(void)
{
	CASE("proc_views");
	int shm = shmget(IPC_PRIVATE, 4096, 0600);
	int fd = M(open("/proc/sysvipc/shm", O_RDONLY));
	long n = M(read(fd, g_buf, sizeof g_buf));
	printf("  /proc/sysvipc/shm: %s\n", n > 0 && strchr(g_buf, '\n') ? "read" : "unread");
	S(close(fd));
	fd = M(R(SYS_openat, AT_FDCWD, "/proc/sysvipc/msg", O_RDONLY, 0, 0, 0));
	S(read(fd, g_buf, sizeof g_buf) > 0);
	close(fd);
	fd = M(open("/proc/sys/kernel/msgmni", O_RDWR));
	S(write(fd, "100\n", 4));
	struct iovec v[3] = { { "1", 1 }, { "2", 1 }, { "0\n", 2 } };
	S(pwritev(fd, v, 3, 0));
	close(fd);
	fd = open("/proc/sys/kernel/msgmni", O_RDONLY);
	memset(g_buf, 0, 16);
	S(read(fd, g_buf, 15));
	printf("  msgmni: %s", g_buf);
	close(fd);
	shmctl(shm, IPC_RMID, NULL);
	budget_check();
}

/* Enough creations for the pipe collector and the epoll instance collector to run on this
 * stack: closed pipes, and epoll instances closed while their pipe stays open. */
static void collectors(void)
{
	CASE("collectors");
	int p[2], q[2];
	const char *failed = NULL;
	int at = 0, err = 0;
	/* The first call that failed, with its errno: the count alone hides which object ran out. */
#define TRY(expr, i) do { if ((long)(expr) < 0 && !failed) { failed = #expr; at = (i); err = errno; } } while (0)
	for (int i = 0; i < 1100; i++) {
		TRY(M(pipe(p)), i);
		TRY(M(close(p[0])), i);
		TRY(M(close(p[1])), i);
	}
	if (pipe(q))
		die("pipe");
	for (int i = 0; i < 1100; i++) {
		int e = M(epoll_create1(0));
		struct epoll_event one = { EPOLLIN, { .u64 = i } };
		TRY(e, i);
		TRY(M(epoll_ctl(e, EPOLL_CTL_ADD, q[0], &one)), i);
		TRY(M(close(e)), i);
	}
#undef TRY
	close(q[0]);
	close(q[1]);
	if (failed)
		printf("  2200 creations: %s failed at %d: %s\n", failed, at, strerror(err));
	else
		printf("  2200 creations: all ok\n");
	budget_check();
}

/* fork from the small stack; the child execs, passing a pipe on. */
static void fork_exec(void)
{
	CASE("fork_exec");
	int p[2];
	if (pipe(p))
		die("pipe");
	int shm = shmget(IPC_PRIVATE, 4096, 0600);
	void *at = shmat(shm, NULL, 0);
	fflush(stdout);
	pid_t pid = M(fork());
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 1);
		execl("/bin/echo", "echo", "from the exec'd child", (char *)NULL);
		_exit(SETUP_FAIL);
	}
	close(p[1]);
	int st = 0;
	S(waitpid(pid, &st, 0) == pid);
	memset(g_buf, 0, 64);
	S(read(p[0], g_buf, 63));
	printf("  child: %s", g_buf);
	close(p[0]);
	shmdt(at);
	shmctl(shm, IPC_RMID, NULL);
	budget_check();
}

/* ---- on a sigaltstack ---- */

static char *g_alt;
static int g_hp[2];
static long g_hres[12];
static int g_hn;
static int g_nested_fd;
static sigjmp_buf g_jump;

/* A handler's served calls: results kept for printing afterwards. */
static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	static struct pollfd fds[1024];
	/* Measured on the altstack: two signal frames (this handler's and the catch-all's), the
	 * handler's own frames and the shim's. */
	char *lo = g_lo;
	long limit = g_limit;
	g_lo = g_alt + 4096;
	g_limit = 2 * (long)getauxval(AT_MINSIGSTKSZ) + BUDGET + 2 * SLACK;
	g_hn = 0;
	g_hres[g_hn++] = M(write(g_hp[1], "in handler", 10));
	g_hres[g_hn++] = M(R(SYS_read, g_hp[0], g_buf, sizeof g_buf, 0, 0, 0));
	g_hres[g_hn++] = M(R(SYS_writev, g_hp[1], iov1(), NIOV, 0, 0, 0));
	g_hres[g_hn++] = M(readv(g_hp[0], iov1(), NIOV));
	for (int i = 0; i < 1024; i++)
		fds[i] = (struct pollfd){ g_hp[i % 2], POLLIN | POLLOUT, 0 };
	g_hres[g_hn++] = M(R(SYS_poll, fds, 1024, 0, 0, 0, 0));
	struct sembuf op = { 0, 1, 0 };
	g_hres[g_hn++] = M(R(SYS_semop, g_semid, &op, 1, 0, 0, 0));
	if (g_nested_fd >= 0)
		g_hres[g_hn++] = M(write(g_nested_fd, "!", 1));
	g_lo = lo;
	g_limit = limit;
}

static void on_jump(int sig)
{
	(void)sig;
	siglongjmp(g_jump, 1);
}

static void altstack(void)
{
	CASE("sigaltstack");
	g_alt = mmap(NULL, ALT_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g_alt == MAP_FAILED)
		die("mmap");
	stack_t ss = { .ss_sp = g_alt, .ss_size = ALT_STACK, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL))
		die("sigaltstack");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL))
		die("sigaction");
	if (pipe(g_hp))
		die("pipe");
	g_semid = semget(IPC_PRIVATE, 1, 0600);
	g_nested_fd = -1;
	raise(SIGUSR1);
	printf("  handler on the altstack:");
	for (int i = 0; i < g_hn; i++)
		printf(" %ld", g_hres[i]);
	printf("\n");
	/* Nested: a handler interrupts a served ppoll of 1024 fds and makes served calls of its
	 * own; the ppoll is not restarted. SIGUSR2 is blocked but by ppoll's mask, so it arrives
	 * during the ppoll whenever the helper sends it. The ppoll is over a socket: ipcshim's
	 * trace logs a call as it returns, after the handler's, where strace shows the interrupted
	 * call first, and `ipcshim diff` leaves a poll of sockets alone. */
	static struct pollfd fds[1024];
	int w[2], sv[2];
	if (pipe(w) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("pipe");
	for (int i = 0; i < 1024; i++)
		fds[i] = (struct pollfd){ sv[0], POLLIN, 0 };
	g_nested_fd = w[1];
	g_pid = getpid();
	g_tid = gettid();
	sigset_t usr2, during;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, &during);
	struct later l;
	struct timespec ts = { 5, 0 };
	later(&l, 30, kill_small, SIGUSR2);
	S(ppoll(fds, 1024, &ts, &during));
	join(&l);
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
	printf("  handler in the ppoll:");
	for (int i = 0; i < g_hn; i++)
		printf(" %ld", g_hres[i]);
	printf("\n");
	S(read(w[0], g_buf, sizeof g_buf));
	/* A handler that longjmps out of a served readv of 1024 iovecs (or before it, late): later
	 * calls still work. */
	sa.sa_handler = on_jump;
	sa.sa_flags = SA_ONSTACK;
	if (sigaction(SIGUSR2, &sa, NULL))
		die("sigaction");
	volatile int jumped = 0;
	if (sigsetjmp(g_jump, 1) == 0) {
		later(&l, 30, kill_small, SIGUSR2);
		S(readv(w[0], iov1(), NIOV));
	} else {
		jumped = 1;
	}
	join(&l);
	printf("  longjmp out of readv: %s\n", jumped ? "yes" : "no");
	S(write(w[1], "after", 5));
	S(readv(w[0], iov1(), NIOV));
	for (int i = 0; i < 1024; i++)
		fds[i] = (struct pollfd){ w[1], POLLOUT, 0 };
	S(poll(fds, 1024, 0));
	close(w[0]);
	close(w[1]);
	close(sv[0]);
	close(sv[1]);
	close(g_hp[0]);
	close(g_hp[1]);
	semctl(g_semid, 0, IPC_RMID);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	budget_check();
}

static void *small_main(void *arg)
{
	(void)arg;
	pthread_attr_t a;
	void *addr;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &a) || pthread_attr_getstack(&a, &addr, &size))
		die("pthread_getattr_np");
	g_lo = addr;
	g_limit = (long)getauxval(AT_MINSIGSTKSZ) + BUDGET + SLACK;
	pipes();
	polls();
	epolls();
	sockets();
	sysv();
	procfs();
	collectors();
	fork_exec();
	altstack();
	return NULL;
}

int main(int argc, char **argv)
{
	sk_setup();
	/* Fully buffered: printf to an unbuffered stream puts an 8 KiB buffer on the stack. */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	alarm(50);
	signal(SIGPIPE, SIG_IGN);
	printf("%s\n", argc > 1 ? "traced run" : "first run");
	pthread_attr_t a;
	pthread_t t;
	if (pthread_attr_init(&a) || pthread_attr_setstacksize(&a, SMALL_STACK))
		die("pthread_attr_setstacksize");
	if (pthread_create(&t, &a, small_main, NULL))
		die("pthread_create");
	pthread_join(t, NULL);
	sk_cleanup();
	if (argc > 1)
		return 0;
	fflush(stdout);
	setenv("IPCSHIM_TRACE", "/dev/null", 0);
	execl("/proc/self/exe", argv[0], "traced", (char *)NULL);
	die("exec");
}
