/* Blocking semop/semtimedop: hand-over by the waker, FIFO order of waiters
 * (as update_queue does it), wait-for-zero, semncnt/semzcnt counting the
 * operation that blocks, complex operations, EIDRM, EINTR with and without
 * SA_RESTART, timeouts, killed waiters, SETVAL/SETALL waking waiters.
 * Waiters are children, queued one at a time: each is counted in
 * GETNCNT/GETZCNT and asleep before the next step. An interrupted waiter
 * prints its own result; the parent prints nothing until it has reaped it. */
#include "common.h"

static volatile int g_handled;

static void on_usr1(int sig)
{
	(void)sig;
	g_handled++;
}

/* A child that blocks in the operation with SIGUSR1 handled (flags), and
 * prints how the call ended and how often the handler ran. */
static pid_t eintr_waiter(int id, struct sembuf s, int flags, const struct timespec *ts)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		io_handler(SIGUSR1, on_usr1, flags);
		errno = 0;
		long r = ts ? semtimedop(id, &s, 1, ts) : semop(id, &s, 1);
		int e = errno;
		printf("  waiter: %s = %ld %s, handler ran %d time(s)\n",
		       ts ? "semtimedop" : "semop", r, r ? errname(e) : "", g_handled);
		_exit(0);
	}
	g_child = pid;
	return pid;
}

static pid_t timed_waiter(const char *label, int id, struct sembuf s, time_t sec)
{
	struct timespec ts = { sec, 0 };
	return sem_waiter(label, id, &s, 1, &ts);
}

/* Simple calls that fail at once, each taking the set's lock: after a few the
 * shim (as the kernel) serves simple operations under their semaphore's lock
 * again. Semaphore 0 must be 0. */
static void leave_complex_mode(int id)
{
	for (int i = 0; i < 12; i++)
		if (semop(id, (struct sembuf[]){ { 0, -1, IPC_NOWAIT } }, 1) == 0 || errno != EAGAIN)
			die("semop");
}

int main(void)
{
	setup();
	alarm(30);
	int id, id2;
	pid_t a, b, c, pid;
	struct timespec ts, t0;
	long ms;

	CASE("wait_handoff");
	id = SHOW(semget(IPC_PRIVATE, 3, 0600));
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	show_sem(id, 0);
	sem_stat_show(id);
	OPS(id, { 0, 1, 0 });
	printf(" the waker gave the unit to A before returning:\n");
	show_sem(id, 0);
	OPS(id, { 0, -1, IPC_NOWAIT });
	sem_reap(a);
	sem_stat_show(id);

	CASE("wait_fifo");
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	b = QUEUE("B", id, 0, GETNCNT, 2, { 0, -1, 0 });
	c = QUEUE("C", id, 0, GETNCNT, 3, { 0, -1, 0 });
	show_sem(id, 0);
	OPS(id, { 0, 2, 0 });
	show_sem(id, 0);
	sem_reap_any(2);
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	sem_reap(c);
	sem_unlabel_all();

	CASE("wait_fifo_not_strict");
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -2, 0 });
	b = QUEUE("B", id, 0, GETNCNT, 2, { 0, -1, 0 });
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	sem_reap(b);
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	printf(" a newcomer that can proceed does, A still waits:\n");
	OPS(id, { 0, -1, IPC_NOWAIT });
	OPS(id, { 0, 3, 0 });
	show_sem(id, 0);
	sem_reap(a);
	sem_unlabel_all();

	CASE("wait_skip_larger");
	SHOW(semctl(id, 0, SETVAL, 0));
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	b = QUEUE("B", id, 0, GETNCNT, 2, { 0, -3, 0 });
	c = QUEUE("C", id, 0, GETNCNT, 3, { 0, -1, 0 });
	OPS(id, { 0, 3, 0 });
	show_sem(id, 0);
	sem_reap_any(2);
	OPS(id, { 0, 2, 0 });
	show_sem(id, 0);
	sem_reap(b);
	sem_unlabel_all();

	CASE("wait_zero");
	SHOW(semctl(id, 1, SETVAL, 2));
	a = QUEUE("Z1", id, 1, GETZCNT, 1, { 1, 0, 0 });
	b = QUEUE("Z2", id, 1, GETZCNT, 2, { 1, 0, 0 });
	show_sem(id, 1);
	OPS(id, { 1, -1, 0 });
	show_sem(id, 1);
	OPS(id, { 1, -1, 0 });
	show_sem(id, 1);
	sem_reap_any(2);
	sem_unlabel_all();

	CASE("wait_zero_after_waiter_takes");
	SHOW(semctl(id, 0, SETVAL, 1));
	a = QUEUE("Z", id, 0, GETZCNT, 1, { 0, 0, 0 });
	b = QUEUE("A", id, 0, GETNCNT, 1, { 0, -2, 0 });
	show_sem(id, 0);
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	sem_reap_any(2);
	sem_unlabel_all();

	CASE("wait_counts_blocking_sop");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	a = QUEUE("W", id, 0, GETNCNT, 1, { 0, -1, 0 }, { 1, -1, 0 });
	show_sem(id, 0);
	show_sem(id, 1);
	OPS(id, { 0, 1, 0 });
	printf(" W now blocks on sem 1, sem 0 keeps its unit:\n");
	show_sem(id, 0);
	show_sem(id, 1);
	OPS(id, { 1, 1, 0 });
	show_vals(id);
	sem_reap(a);
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 1, 0 }));
	a = QUEUE("Z", id, 0, GETZCNT, 1, { 0, 0, 0 }, { 1, 0, 0 });
	show_sem(id, 0);
	show_sem(id, 1);
	OPS(id, { 0, -1, 0 });
	show_sem(id, 0);
	show_sem(id, 1);
	OPS(id, { 1, -1, 0 });
	show_sem(id, 1);
	sem_reap(a);
	sem_unlabel_all();

	CASE("wait_nowait_flag_of_blocking_sop");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 1, 0 }));
	a = QUEUE("W", id, 0, GETNCNT, 1, { 1, -1, IPC_NOWAIT }, { 0, -1, 0 });
	show_vals(id);
	show_sem(id, 0);
	OPS(id, { 0, 1, 0 });
	show_vals(id);
	sem_reap(a);
	sem_unlabel_all();

	CASE("wait_complex_restart");
	/* B's completion gives sem 1 to A, queued before it. */
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	a = QUEUE("A", id, 1, GETNCNT, 1, { 1, -1, 0 });
	b = QUEUE("B", id, 0, GETNCNT, 1, { 0, -1, 0 }, { 1, 1, 0 });
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	show_sem(id, 1);
	sem_reap_any(2);
	sem_unlabel_all();

	CASE("wait_fifo_with_complex");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 1, 0 }));
	b = QUEUE("B", id, 0, GETNCNT, 1, { 0, -1, 0 }, { 1, -1, 0 });
	a = QUEUE("A", id, 0, GETNCNT, 2, { 0, -1, 0 });
	OPS(id, { 0, 1, 0 });
	show_vals(id);
	show_sem(id, 0);
	sem_reap_any(1);
	OPS(id, { 0, 1, 0 });
	sem_reap(a);
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 1, 0 }));
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	b = QUEUE("B", id, 0, GETNCNT, 2, { 0, -1, 0 }, { 1, -1, 0 });
	OPS(id, { 0, 1, 0 });
	show_vals(id);
	show_sem(id, 0);
	sem_reap_any(1);
	OPS(id, { 0, 1, 0 });
	sem_reap(b);
	show_vals(id);
	sem_unlabel_all();

	CASE("wait_mixed_modes");
	/* Simple sleepers queued on their semaphores (where the shim, like the
	 * kernel, takes only the semaphore's lock once a few failed calls have
	 * left the set's lock unused), then a complex sleeper merges them into
	 * the set's queue, a simple one queues behind it, and wake-ups go in
	 * update_queue's order; after the complex one leaves, FIFO again. */
	{
		pid_t d, z;
		SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 1 }));
		leave_complex_mode(id);
		a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
		leave_complex_mode(id);
		b = QUEUE("B", id, 1, GETNCNT, 1, { 1, -1, 0 });
		leave_complex_mode(id);
		z = QUEUE("Z", id, 2, GETZCNT, 1, { 2, 0, 0 });
		leave_complex_mode(id);
		OPS(id, { 1, 1, 0 });
		sem_reap(b);
		leave_complex_mode(id);
		b = QUEUE("B", id, 1, GETNCNT, 1, { 1, -1, 0 });
		c = QUEUE("C", id, 0, GETNCNT, 2, { 0, -1, 0 }, { 1, -1, 0 });
		d = QUEUE("D", id, 0, GETNCNT, 3, { 0, -1, 0 });
		OPS(id, { 0, 2, 0 });
		sem_reap_any(2);
		show_vals(id);
		OPS(id, { 1, 1, 0 });
		sem_reap(b);
		OPS(id, { 0, 1, 0 }, { 1, 1, 0 });
		sem_reap(c);
		show_vals(id);
		OPS(id, { 2, -1, 0 });
		sem_reap(z);
		leave_complex_mode(id);
		a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
		leave_complex_mode(id);
		d = QUEUE("D", id, 0, GETNCNT, 2, { 0, -1, 0 });
		leave_complex_mode(id);
		OPS(id, { 0, 1, 0 });
		sem_reap_any(1);
		leave_complex_mode(id);
		OPS(id, { 0, 1, 0 });
		sem_reap(d);
		show_vals(id);
		sem_unlabel_all();
	}

	CASE("wait_eidrm");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 1, 0 }));
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	b = QUEUE("Z", id, 1, GETZCNT, 1, { 1, 0, 0 });
	c = QUEUE("W", id, 2, GETNCNT, 1, { 2, -1, 0 }, { 0, -1, 0 });
	pid = QUEUE("U", id, 0, GETNCNT, 2, { 0, -1, SEM_UNDO });
	SHOW(semctl(id, 0, IPC_RMID));
	sem_reap_any(4);
	SHOW(semctl(id, 0, GETNCNT));
	sem_unlabel_all();

	CASE("wait_eintr");
	id = SHOW(semget(IPC_PRIVATE, 2, 0600));
	pid = eintr_waiter(id, (struct sembuf){ 0, -1, 0 }, 0, NULL);
	sem_settle(id, 0, GETNCNT, 1);
	io_wait_sleeping(pid);
	if (kill(pid, SIGUSR1))
		die("kill");
	show_status("waiter", wait_child(pid));
	show_sem(id, 0);

	CASE("wait_eintr_sa_restart");
	pid = eintr_waiter(id, (struct sembuf){ 0, -1, 0 }, SA_RESTART, NULL);
	sem_settle(id, 0, GETNCNT, 1);
	io_wait_sleeping(pid);
	if (kill(pid, SIGUSR1))
		die("kill");
	show_status("waiter", wait_child(pid));
	show_sem(id, 0);
	SHOW(semctl(id, 1, SETVAL, 1));
	pid = eintr_waiter(id, (struct sembuf){ 1, 0, 0 }, SA_RESTART, NULL);
	sem_settle(id, 1, GETZCNT, 1);
	io_wait_sleeping(pid);
	if (kill(pid, SIGUSR1))
		die("kill");
	show_status("waiter", wait_child(pid));
	show_sem(id, 1);

	CASE("wait_eintr_semtimedop");
	ts = (struct timespec){ 20, 0 };
	pid = eintr_waiter(id, (struct sembuf){ 0, -1, 0 }, SA_RESTART, &ts);
	sem_settle(id, 0, GETNCNT, 1);
	io_wait_sleeping(pid);
	if (kill(pid, SIGUSR1))
		die("kill");
	show_status("waiter", wait_child(pid));
	show_sem(id, 0);

	CASE("wait_ignored_signal");
	/* A signal that is ignored, or blocked, does not interrupt. */
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	SHOW(kill(a, SIGCHLD));
	SHOW(kill(a, SIGURG));
	io_wait_sleeping(a);
	show_sem(id, 0);
	OPS(id, { 0, 1, 0 });
	sem_reap(a);
	sem_unlabel_all();

	CASE("wait_timeout");
	ts = (struct timespec){ 0, 100 * 1000 * 1000 };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	TOPS(id, &ts, { 0, -1, 0 });
	ms = ms_since(&t0);
	printf("  waited at least 90 ms: %s\n", ms >= 90 ? "yes" : "no");
	show_sem(id, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	TOPS(id, &ts, { 1, 0, 0 });
	ms = ms_since(&t0);
	printf("  waited at least 90 ms: %s\n", ms >= 90 ? "yes" : "no");
	show_sem(id, 1);
	ts = (struct timespec){ 0, 1 };
	TOPS(id, &ts, { 0, -1, 0 });
	TOPS(id, &ts, { 0, 1, 0 }, { 1, -1, 0 });
	show_vals(id);

	CASE("wait_timed_woken");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0 }));
	a = timed_waiter("A", id, (struct sembuf){ 0, -1, 0 }, 20);
	sem_settle(id, 0, GETNCNT, 1);
	io_wait_sleeping(a);
	b = timed_waiter("B", id, (struct sembuf){ 0, -1, 0 }, 20);
	sem_settle(id, 0, GETNCNT, 2);
	io_wait_sleeping(b);
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	sem_reap(a);
	OPS(id, { 0, 1, 0 });
	sem_reap(b);
	sem_unlabel_all();

	CASE("wait_killed_waiter");
	a = QUEUE("A", id, 0, GETNCNT, 1, { 0, -1, 0 });
	b = QUEUE("B", id, 0, GETNCNT, 2, { 0, -1, 0 });
	c = QUEUE("C", id, 1, GETNCNT, 1, { 1, -1, 0 }, { 0, 0, 0 });
	SHOW(kill(a, SIGKILL));
	sem_reap(a);
	SHOW(kill(c, SIGKILL));
	sem_reap(c);
	show_sem(id, 0);
	show_sem(id, 1);
	OPS(id, { 0, 1, 0 });
	show_sem(id, 0);
	sem_reap(b);
	OPS(id, { 0, 1, 0 }, { 1, 1, 0 });
	show_vals(id);
	sem_unlabel_all();

	CASE("wait_setval_wakes");
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0600));
	SHOW(semctl(id2, 1, SETVAL, 5));
	sem_stat_show(id2);
	a = QUEUE("A", id2, 0, GETNCNT, 1, { 0, -3, 0 });
	SHOW(semctl(id2, 0, SETVAL, 2));
	show_sem(id2, 0);
	SHOW(semctl(id2, 0, SETVAL, 5));
	show_sem(id2, 0);
	sem_reap(a);
	printf(" the operation completed by SETVAL set otime:\n");
	sem_stat_show(id2);
	SHOW(semctl(id2, 0, IPC_RMID));
	sem_unlabel_all();

	CASE("wait_setall_wakes");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 0 }));
	a = QUEUE("Z", id, 0, GETZCNT, 1, { 0, 0, 0 });
	b = QUEUE("A", id, 1, GETNCNT, 1, { 1, -1, 0 });
	c = QUEUE("W", id, 1, GETNCNT, 2, { 1, -2, 0 }, { 0, 1, 0 });
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 1 }));
	show_sem(id, 0);
	show_sem(id, 1);
	sem_reap_any(2);
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 2 }));
	show_vals(id);
	show_sem(id, 0);
	sem_reap(c);
	SHOW(semctl(id, 0, IPC_RMID));
	return 0;
}
