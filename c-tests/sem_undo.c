/* SEM_UNDO: adjustments applied when the process ends (exit, _exit, after
 * exec, SIGKILL, killed while blocked), not inherited by fork children,
 * merged per semaphore, clamped to 0..SEMVMX at exit, cleared by SETVAL/
 * SETALL, dropped with a removed set, and waking waiters when applied.
 * The parent synchronises with each child through pipes and waitpid. */
#include "common.h"
#include <pthread.h>

static int p_up[2], p_down[2];

static void post(void) { io_post(p_up[1]); }
static void await_parent(void) { io_wait(p_down[0]); }
static void await_child(void) { io_wait(p_up[0]); }
static void release(void) { io_post(p_down[1]); }

/* Exec'd image: report the value it inherited, add its own SEM_UNDO
 * operation, exit. */
static int exec_image(char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	int id = atoi(argv[2]);
	printf("  exec'd image sees val=%d\n", semctl(id, 0, GETVAL));
	struct sembuf s = { 0, 3, SEM_UNDO };
	printf("  exec'd image semop +3 undo = %d\n", semop(id, &s, 1));
	printf("  exec'd image sees val=%d\n", semctl(id, 0, GETVAL));
	return 0;
}

/* Fork a child that runs fn(id) and then ends as told: 0 exit, 1 _exit,
 * 2 wait to be killed. */
static pid_t undo_child(void (*fn)(int), int id, int how)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		fn(id);
		if (how == 2) {
			post();
			for (;;)
				pause();
		}
		if (how == 1)
			_exit(0);
		exit(0);
	}
	return pid;
}

static void up1(int id) { sem_do(id, 0, 1, SEM_UNDO); }

/* Takes and gives back one unit with SEM_UNDO, as fast as it can, until killed: a kill lands
 * at any instant of an operation, with the undo adjustment changed or not yet. */
static int loop_id;
static void *undo_loop(void *arg)
{
	struct sembuf take = { 0, -1, SEM_UNDO }, give = { 0, 1, SEM_UNDO };
	(void)arg;
	for (;;)
		if (semop(loop_id, &take, 1) || semop(loop_id, &give, 1))
			_exit(3);
	return NULL;
}

static void loop_one(int id)
{
	loop_id = id;
	post();
	undo_loop(NULL);
}

/* The same in three threads of one process, sharing its undo entries. */
static void loop_threads(int id)
{
	pthread_t t;
	loop_id = id;
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t, NULL, undo_loop, NULL))
			die("pthread_create");
	post();
	undo_loop(NULL);
}

static void merged(int id)
{
	sem_do(id, 0, 2, SEM_UNDO);
	sem_do(id, 0, 3, SEM_UNDO);
	sem_do(id, 0, -1, SEM_UNDO);
	sem_do(id, 0, 4, 0);
	sem_do(id, 1, 5, SEM_UNDO);
	sem_do(id, 1, -5, SEM_UNDO);
	sem_do(id, 2, 1, 0);
	sem_do(id, 2, 6, SEM_UNDO);
	post();
	await_parent();
}

static void up3_wait(int id)
{
	sem_do(id, 0, 3, SEM_UNDO);
	post();
	await_parent();
}

static void down5_wait(int id)
{
	sem_do(id, 0, -5, SEM_UNDO);
	post();
	await_parent();
}

static void up2_both_wait(int id)
{
	struct sembuf s[2] = { { 0, 2, SEM_UNDO }, { 1, 2, SEM_UNDO } };
	if (semop(id, s, 2))
		die("semop");
	post();
	await_parent();
}

static void take_wait(int id)
{
	sem_do(id, 0, -1, SEM_UNDO);
	post();
	await_parent();
}

static int g_other;

static void two_sets(int id)
{
	sem_do(id, 0, 2, SEM_UNDO);
	sem_do(g_other, 0, 1, SEM_UNDO);
	sem_do(g_other, 1, -1, SEM_UNDO);
}

static void hold_then_block(int id)
{
	sem_do(id, 0, 1, SEM_UNDO);
	sem_do(id, 1, -1, SEM_UNDO);
	_exit(3);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "undo-exec"))
		return exec_image(argv);
	setup();
	alarm(20);
	int id, id2, st;
	pid_t pid, w;
	io_pipe(p_up);
	io_pipe(p_down);

	CASE("undo_exit");
	id = SHOW(semget(IPC_PRIVATE, 3, 0600));
	pid = undo_child(up1, id, 0);
	show_status("child", wait_child(pid));
	show_sem(id, 0);
	sem_stat_show(id);

	CASE("undo__exit");
	SHOW(semctl(id, 0, SETVAL, 2));
	pid = undo_child(up1, id, 1);
	show_status("child", wait_child(pid));
	show_sem(id, 0);

	CASE("undo_sigkill");
	SHOW(semctl(id, 0, SETVAL, 3));
	pid = undo_child(take_wait, id, 0);
	await_child();
	show_sem(id, 0);
	SHOW(kill(pid, SIGKILL));
	show_status("child", wait_child(pid));
	show_sem(id, 0);

	CASE("undo_exec");
	SHOW(semctl(id, 0, SETVAL, 1));
	pid = io_fork();
	if (pid == 0) {
		char a[16];
		sem_do(id, 0, 2, SEM_UNDO);
		snprintf(a, sizeof a, "%d", id);
		execl("/proc/self/exe", "sem_undo", "undo-exec", a, (char *)NULL);
		_exit(1);
	}
	show_status("child", wait_child(pid));
	printf(" both the pre-exec +2 and the exec'd image's +3 are undone:\n");
	show_sem(id, 0);

	CASE("undo_not_inherited");
	SHOW(semctl(id, 0, SETVAL, 0));
	pid = io_fork();
	if (pid == 0) {
		sem_do(id, 0, 1, SEM_UNDO);
		pid_t gc = fork();
		if (gc < 0)
			die("fork");
		if (gc == 0)
			_exit(0);
		if (waitpid(gc, &st, 0) != gc)
			die("waitpid");
		printf("  after the grandchild exited: val=%d\n", semctl(id, 0, GETVAL));
		gc = fork();
		if (gc < 0)
			die("fork");
		if (gc == 0) {
			sem_do(id, 0, -1, 0);
			_exit(0);
		}
		if (waitpid(gc, &st, 0) != gc)
			die("waitpid");
		printf("  after a grandchild took it without undo: val=%d\n",
		       semctl(id, 0, GETVAL));
		sem_do(id, 0, 1, 0);
		exit(0);
	}
	show_status("child", wait_child(pid));
	show_sem(id, 0);

	CASE("undo_merged");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	pid = undo_child(merged, id, 0);
	await_child();
	show_vals(id);
	OPS(id, { 1, 1, 0 });
	release();
	show_status("child", wait_child(pid));
	show_vals(id);
	show_sem(id, 0);
	show_sem(id, 1);
	show_sem(id, 2);

	CASE("undo_clamp_zero");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	pid = undo_child(up3_wait, id, 0);
	await_child();
	OPS(id, { 0, -2, 0 });
	release();
	show_status("child", wait_child(pid));
	show_sem(id, 0);

	CASE("undo_clamp_semvmx");
	SHOW(semctl(id, 0, SETVAL, 10));
	pid = undo_child(down5_wait, id, 0);
	await_child();
	OPS(id, { 0, 32760, 0 });
	release();
	show_status("child", wait_child(pid));
	show_sem(id, 0);

	CASE("undo_setval_clears");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	pid = undo_child(up2_both_wait, id, 0);
	await_child();
	SHOW(semctl(id, 0, SETVAL, 5));
	release();
	show_status("child", wait_child(pid));
	show_vals(id);
	show_sem(id, 0);
	show_sem(id, 1);

	CASE("undo_setall_clears");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	pid = undo_child(up2_both_wait, id, 0);
	await_child();
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 4, 4, 4 }));
	release();
	show_status("child", wait_child(pid));
	show_vals(id);
	show_sem(id, 1);

	CASE("undo_later_ops_count_again");
	/* After SETVAL cleared it, the same process's new operations count. */
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	pid = io_fork();
	if (pid == 0) {
		sem_do(id, 0, 2, SEM_UNDO);
		post();
		await_parent();
		sem_do(id, 0, 1, SEM_UNDO);
		exit(0);
	}
	await_child();
	SHOW(semctl(id, 0, SETVAL, 7));
	release();
	show_status("child", wait_child(pid));
	show_sem(id, 0);

	CASE("undo_two_sets");
	g_other = SHOW(semget(IPC_PRIVATE, 2, 0600));
	SHOW(semctl(g_other, 1, SETVAL, 4));
	SHOW(semctl(id, 0, SETVAL, 0));
	pid = undo_child(two_sets, id, 0);
	show_status("child", wait_child(pid));
	show_vals(id);
	show_vals(g_other);

	CASE("undo_set_removed");
	id2 = SHOW(semget(0x5e6e2001, 1, IPC_CREAT | 0600));
	pid = io_fork();
	if (pid == 0) {
		sem_do(id2, 0, 1, SEM_UNDO);
		post();
		await_parent();
		OPS(id2, { 0, 1, SEM_UNDO });
		exit(0);
	}
	await_child();
	SHOW(semctl(id2, 0, IPC_RMID));
	id2 = SHOW(semget(0x5e6e2001, 1, IPC_CREAT | 0600));
	SHOW(semctl(id2, 0, SETVAL, 1));
	release();
	show_status("child", wait_child(pid));
	show_sem(id2, 0);
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("undo_exit_wakes_waiter");
	SHOW(semctl(id, 0, SETVAL, 1));
	pid = undo_child(take_wait, id, 0);
	await_child();
	w = QUEUE("W", id, 0, GETNCNT, 1, { 0, -1, 0 });
	show_sem(id, 0);
	release();
	show_status("holder", wait_child(pid));
	show_sem(id, 0);
	sem_reap(w);

	CASE("undo_sigkill_wakes_waiter");
	SHOW(semctl(id, 0, SETVAL, 1));
	pid = undo_child(take_wait, id, 0);
	await_child();
	w = QUEUE("W", id, 0, GETNCNT, 1, { 0, -1, SEM_UNDO });
	SHOW(kill(pid, SIGKILL));
	show_status("holder", wait_child(pid));
	sem_reap(w);
	printf(" W got the unit, and its own undo gave it back:\n");
	show_sem(id, 0);
	sem_unlabel_all();

	CASE("undo_killed_while_blocked");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	pid = undo_child(hold_then_block, id, 0);
	sem_settle(id, 1, GETNCNT, 1);
	io_wait_sleeping(pid);
	show_vals(id);
	SHOW(kill(pid, SIGKILL));
	show_status("child", wait_child(pid));
	show_vals(id);
	show_sem(id, 1);

	CASE("undo_blocked_op_with_undo");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0 }));
	w = QUEUE("W", id, 0, GETNCNT, 1, { 0, -2, SEM_UNDO }, { 1, 1, SEM_UNDO });
	OPS(id, { 0, 2, 0 });
	sem_reap(w);
	show_vals(id);
	show_sem(id, 0);

	CASE("undo_killed_mid_loop");
	SHOW(semctl(id, 0, SETVAL, 100));
	int killed = 0;
	for (int k = 0; k < 40; k++) {
		pid = undo_child(k % 2 ? loop_threads : loop_one, id, 0);
		await_child();
		struct timespec t = { 0, 100000 + (k * 37 % 11) * 40000 };
		nanosleep(&t, NULL);
		kill(pid, SIGKILL);
		st = wait_child(pid);
		killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
	}
	printf("  %d of 40 loopers killed; every adjustment undone exactly once: val=%d\n", killed,
	       semctl(id, 0, GETVAL));
	return 0;
}
