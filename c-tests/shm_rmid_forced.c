/* kernel.shm_rmid_forced=1, set by the runner before exec. */
/* proc_rmid_forced_destroys_orphans (writing the sysctl at run time) comes with the /proc-views issue. */
// sysctl: shm_rmid_forced=1
#include "common.h"

int main(void)
{
	setup();
	int id, zero = 0, one = 1;
	char *p;

	CASE("proc_rmid_forced_detach");
	id = SHOW(shmget(0x10040006, 4096, IPC_CREAT | 0600));
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(shmdt(p));
	stat_show(id);
	SHOW(shmget(0x10040006, 0, 0));

	CASE("proc_rmid_forced_creator_exit");
	in_child(0, create_and_exit, &zero);
	SHOW(shmget(0x10040005, 0, 0));
	in_child(0, create_and_exit, &one);
	SHOW(shmget(0x10040005, 0, 0));

	CASE("proc_rmid_forced_keeps_unattached_of_live_creator");
	id = SHOW(shmget(0x10040007, 4096, IPC_CREAT | 0600));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));
	return 0;
}
