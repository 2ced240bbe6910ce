/* shmctl: IPC_STAT/IPC_SET/IPC_RMID, IPC_INFO/SHM_INFO, SHM_STAT(_ANY),
 * SHM_LOCK/SHM_UNLOCK, bad commands and bad pointers. */
#include "common.h"

static int g_id;

static void nobody_ctl(void *arg)
{
	(void)arg;
	struct shmid_ds ds;
	memset(&ds, 0, sizeof ds);
	ds.shm_perm.mode = 0666;
	SHOW(shmctl(g_id, IPC_SET, &ds));
	SHOW(shmctl(g_id, IPC_RMID, NULL));
	SHOW(shmctl(g_id, IPC_STAT, &ds));
	SHOW(shmctl(g_id & 0x7fff, SHM_STAT, &ds));
	SHOW(shmctl(g_id & 0x7fff, SHM_STAT_ANY, &ds) == g_id);
	SHOW(shmctl(g_id, SHM_LOCK, NULL));
	SHOW(shmctl(g_id, SHM_UNLOCK, NULL));
}

static void nobody_owner(void *arg)
{
	(void)arg;
	struct shmid_ds ds;
	SHOW(shmctl(g_id, IPC_STAT, &ds));
	ds.shm_perm.mode = 0;
	SHOW(shmctl(g_id, IPC_SET, &ds));
	SHOW(shmctl(g_id, IPC_STAT, &ds));
	ds.shm_perm.uid = 0;
	SHOW(shmctl(g_id, IPC_SET, &ds));
	SHOW(shmctl(g_id, IPC_STAT, &ds));
}

static void creator_1000(void *arg)
{
	(void)arg;
	struct shmid_ds ds;
	SHOW(shmctl(g_id, IPC_STAT, &ds));
	show_ds(&ds);
	SHOW(shmctl(g_id, IPC_SET, &ds));
	SHOW(shmctl(g_id, IPC_RMID, NULL));
}

static void lock_rlimit(void *arg)
{
	(void)arg;
	struct rlimit rl = { 0, 0 };
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		die("setrlimit");
	int id = SHOW(shmget(IPC_PRIVATE, 1 << 20, 0600));
	SHOW(shmctl(id, SHM_LOCK, NULL));
	SHOW(shmctl(id, SHM_UNLOCK, NULL));
	SHOW(shmctl(id, IPC_RMID, NULL));
}

static void lock_small_rlimit(void *arg)
{
	(void)arg;
	struct rlimit rl = { 65536, 65536 };
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		die("setrlimit");
	int big = SHOW(shmget(IPC_PRIVATE, 1 << 20, 0600));
	int small = SHOW(shmget(IPC_PRIVATE, 65536, 0600));
	SHOW(shmctl(big, SHM_LOCK, NULL));
	SHOW(shmctl(small, SHM_LOCK, NULL));
	struct shmid_ds ds;
	SHOW(shmctl(small, IPC_STAT, &ds));
	printf("  mode=%#o\n", ds.shm_perm.mode);
	SHOW(shmctl(small, SHM_UNLOCK, NULL));
	SHOW(shmctl(big, IPC_RMID, NULL));
	SHOW(shmctl(small, IPC_RMID, NULL));
}

static void show_info(void)
{
	struct shminfo si;
	SHOW(shmctl(0, IPC_INFO, (struct shmid_ds *)&si));
	printf("  shmmax=%lu shmmin=%lu shmmni=%lu shmseg=%lu shmall=%lu\n",
	       si.shmmax, si.shmmin, si.shmmni, si.shmseg, si.shmall);
}

static void show_shm_info(void)
{
	struct shm_info si;
	SHOW(shmctl(0, SHM_INFO, (struct shmid_ds *)&si));
	printf("  used_ids=%d shm_tot=%lu shm_rss=%lu shm_swp=%lu "
	       "swap_attempts=%lu swap_successes=%lu\n",
	       si.used_ids, si.shm_tot, si.shm_rss, si.shm_swp,
	       si.swap_attempts, si.swap_successes);
}

int main(void)
{
	setup();
	int id, id2;
	char *p;
	struct shmid_ds ds;
	time_t mark;

	CASE("ctl_info_empty");
	show_info();
	show_shm_info();

	CASE("ctl_stat_lifecycle");
	id = SHOW(shmget(0x10030001, 5000, IPC_CREAT | 0640));
	stat_show(id);
	p = AT(shmat(id, NULL, 0), NULL);
	stat_show(id);
	SHOW(shmdt(p));
	stat_show(id);

	CASE("ctl_times_update");
	mark = next_second();
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(shmctl(id, IPC_STAT, &ds));
	printf("  atime>=mark=%d dtime<mark=%d ctime<mark=%d\n",
	       ds.shm_atime >= mark, ds.shm_dtime < mark, ds.shm_ctime < mark);
	mark = next_second();
	SHOW(shmdt(p));
	SHOW(shmctl(id, IPC_STAT, &ds));
	printf("  atime<mark=%d dtime>=mark=%d ctime<mark=%d\n",
	       ds.shm_atime < mark, ds.shm_dtime >= mark, ds.shm_ctime < mark);

	CASE("ctl_set_ctime");
	mark = next_second();
	SHOW(shmctl(id, IPC_STAT, &ds));
	printf("  IPC_STAT leaves ctime: ctime<mark=%d\n", ds.shm_ctime < mark);
	SHOW(shmctl(id, IPC_SET, &ds));
	SHOW(shmctl(id, IPC_STAT, &ds));
	printf("  IPC_SET sets ctime: ctime>=mark=%d\n", ds.shm_ctime >= mark);

	CASE("ctl_set_mode");
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.mode = 07777;
	SHOW(shmctl(id, IPC_SET, &ds));
	stat_show(id);
	SHOW(shmctl(id, SHM_LOCK, NULL));
	ds.shm_perm.mode = 0604;
	SHOW(shmctl(id, IPC_SET, &ds));
	stat_show(id);
	SHOW(shmctl(id, SHM_UNLOCK, NULL));
	stat_show(id);

	CASE("ctl_set_ignores_other_fields");
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_segsz = 1;
	ds.shm_nattch = 7;
	ds.shm_cpid = 1;
	ds.shm_lpid = 1;
	ds.shm_atime = 1;
	ds.shm_perm.cuid = 5;
	ds.shm_perm.cgid = 5;
	ds.shm_perm.__key = 5;
	ds.shm_perm.__seq = 5;
	SHOW(shmctl(id, IPC_SET, &ds));
	stat_show(id);

	CASE("ctl_set_uid_gid");
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.uid = NOBODY;
	ds.shm_perm.gid = 1234;
	ds.shm_perm.mode = 0600;
	SHOW(shmctl(id, IPC_SET, &ds));
	stat_show(id);
	g_id = id;
	in_child(NOBODY, nobody_owner, NULL);
	stat_show(id);

	CASE("ctl_set_invalid_ids");
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.uid = (uid_t)-1;
	SHOW(shmctl(id, IPC_SET, &ds));
	ds.shm_perm.uid = 0;
	ds.shm_perm.gid = (gid_t)-1;
	SHOW(shmctl(id, IPC_SET, &ds));
	stat_show(id);

	CASE("ctl_nonowner_eperm");
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.uid = 0;
	ds.shm_perm.gid = 0;
	ds.shm_perm.mode = 0666;
	SHOW(shmctl(id, IPC_SET, &ds));
	in_child(NOBODY, nobody_ctl, NULL);
	ds.shm_perm.mode = 0600;
	SHOW(shmctl(id, IPC_SET, &ds));
	in_child(NOBODY, nobody_ctl, NULL);
	stat_show(id);

	CASE("ctl_creator_keeps_rights");
	g_id = id2 = SHOW(shmget(0x10030002, 4096, IPC_CREAT | 0600));
	SHOW(shmctl(id2, IPC_STAT, &ds));
	ds.shm_perm.uid = 1000;
	ds.shm_perm.gid = 1000;
	SHOW(shmctl(id2, IPC_SET, &ds));
	in_child(1000, creator_1000, NULL);
	SHOW(shmctl(id2, IPC_STAT, &ds));

	CASE("ctl_rmid_deferred");
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(shmctl(id, IPC_RMID, NULL));
	stat_show(id);
	SHOW(shmget(0x10030001, 0, 0));
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.mode = 0644;
	SHOW(shmctl(id, IPC_SET, &ds));
	stat_show(id);
	show_shm_info();
	SHOW(shmdt(p));
	SHOW(shmctl(id, IPC_STAT, &ds));
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmctl(id, IPC_SET, &ds));
	show_shm_info();

	CASE("ctl_ipc_info");
	id = SHOW(shmget(0x10030003, 4096, IPC_CREAT | 0600));
	id2 = SHOW(shmget(0x10030004, 4096, IPC_CREAT | 0600));
	show_info();
	SHOW(shmctl(id2, IPC_RMID, NULL));
	show_info();
	SHOW(shmctl(12345, IPC_INFO, NULL) == -1);

	CASE("ctl_shm_info");
	id2 = SHOW(shmget(IPC_PRIVATE, 3 * 4096 + 1, 0600));
	show_shm_info();
	p = AT(shmat(id2, NULL, 0), NULL);
	p[0] = 1;
	p[2 * 4096] = 1;
	show_shm_info();
	p[3 * 4096] = 1;
	show_shm_info();
	SHOW(shmdt(p));
	show_shm_info();
	SHOW(shmctl(id2, IPC_RMID, NULL));
	show_shm_info();

	CASE("ctl_shm_stat");
	id2 = SHOW(shmget(0x10030005, 4096, IPC_CREAT | 0600));
	SHOW(shmctl(id2 & 0x7fff, SHM_STAT, &ds) == id2);
	show_ds(&ds);
	SHOW(shmctl(id2 & 0x7fff, SHM_STAT_ANY, &ds) == id2);
	SHOW(shmctl(id & 0x7fff, SHM_STAT, &ds) == id);
	SHOW(shmctl(id2, SHM_STAT, &ds) == id2);
	SHOW(shmctl(id2 + 32768, SHM_STAT, &ds) == id2);
	SHOW(shmctl(0, SHM_STAT, &ds));
	SHOW(shmctl(500, SHM_STAT, &ds));
	SHOW(shmctl(500, SHM_STAT_ANY, &ds));
	SHOW(shmctl(40000, SHM_STAT, &ds));
	SHOW(shmctl(-1, SHM_STAT, &ds));

	CASE("ctl_shm_stat_perm");
	g_id = id2;
	in_child(NOBODY, nobody_ctl, NULL);

	CASE("ctl_lock_unlock");
	SHOW(shmctl(id2, SHM_LOCK, NULL));
	stat_show(id2);
	SHOW(shmctl(id2, SHM_LOCK, NULL));
	SHOW(shmctl(id2, SHM_UNLOCK, NULL));
	stat_show(id2);
	SHOW(shmctl(id2, SHM_UNLOCK, NULL));
	SHOW(shmctl(id2, SHM_LOCK, (struct shmid_ds *)1));
	SHOW(shmctl(id2, SHM_UNLOCK, (struct shmid_ds *)1));
	SHOW(shmctl(id2 + 32768, SHM_LOCK, NULL));
	SHOW(shmctl(777, SHM_UNLOCK, NULL));

	CASE("ctl_lock_rlimit");
	in_child(1000, lock_rlimit, NULL);
	in_child(1000, lock_small_rlimit, NULL);

	CASE("ctl_lock_removed");
	p = AT(shmat(id2, NULL, 0), NULL);
	SHOW(shmctl(id2, IPC_RMID, NULL));
	SHOW(shmctl(id2, SHM_LOCK, NULL));
	stat_show(id2);
	SHOW(shmdt(p));
	SHOW(shmctl(id2, SHM_UNLOCK, NULL));

	CASE("ctl_bad_cmd");
	SHOW(shmctl(id, 99, &ds));
	SHOW(shmctl(id, -1, &ds));
	SHOW(shmctl(id, 16, &ds));
	SHOW(shmctl(id, 4, &ds));
	SHOW(shmctl(id, IPC_STAT | 0x100, &ds));
	SHOW(shmctl(-1, IPC_STAT, &ds));
	SHOW(shmctl(-1, IPC_INFO, &ds));
	SHOW(shmctl(-1, IPC_RMID, NULL));
	SHOW(shmctl(-1, 99, NULL));

	CASE("ctl_bad_id");
	SHOW(shmctl(id + 32768, IPC_STAT, &ds));
	SHOW(shmctl(id + 32768, IPC_SET, &ds));
	SHOW(shmctl(id + 32768, IPC_RMID, NULL));
	SHOW(shmctl(id + 1, IPC_STAT, &ds));
	SHOW(shmctl(1000, IPC_RMID, NULL));
	SHOW(shmctl(INT_MAX, IPC_STAT, &ds));

	CASE("ctl_efault");
	SHOW(shmctl(id, IPC_STAT, (struct shmid_ds *)1));
	SHOW(shmctl(id, IPC_STAT, NULL));
	SHOW(shmctl(id, IPC_SET, (struct shmid_ds *)1));
	SHOW(shmctl(id, IPC_SET, NULL));
	SHOW(shmctl(id, IPC_INFO, (struct shmid_ds *)1));
	SHOW(shmctl(id, SHM_INFO, (struct shmid_ds *)1));
	SHOW(shmctl(id & 0x7fff, SHM_STAT, (struct shmid_ds *)1));
	SHOW(shmctl(id & 0x7fff, SHM_STAT_ANY, NULL));
	SHOW(shmctl(id, IPC_RMID, (struct shmid_ds *)1));
	SHOW(shmctl(id, IPC_STAT, &ds));

	CASE("ctl_efault_order");
	SHOW(shmctl(id, IPC_STAT, (struct shmid_ds *)1));
	SHOW(shmctl(id, IPC_SET, (struct shmid_ds *)1));
	SHOW(shmctl(500, SHM_STAT, (struct shmid_ds *)1));
	SHOW(shmctl(99, 99, (struct shmid_ds *)1));

	CASE("ctl_syscall_shmctl");
	id = SHOW(shmget(0x10030006, 10000, IPC_CREAT | 0640));
	memset(&ds, 0, sizeof ds);
	SHOW(syscall(SYS_shmctl, id, IPC_STAT, &ds));
	show_ds(&ds);
	SHOW(syscall(SYS_shmctl, id, IPC_STAT, (void *)1));
	SHOW(syscall(SYS_shmctl, id + 32768, IPC_RMID, NULL));
	SHOW(syscall(SYS_shmctl, id, IPC_RMID, NULL));
	SHOW(syscall(SYS_shmctl, id, IPC_STAT, &ds));
	return 0;
}
