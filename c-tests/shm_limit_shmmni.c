/* shmget against a lowered kernel.shmmni, set by the runner before exec. */
// sysctl: shmmni=3
#include "common.h"

int main(void)
{
	setup();
	int ids[3];

	CASE("get_enospc_shmmni");
	for (int i = 0; i < 3; i++)
		ids[i] = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	SHOW(shmget(0x10010009, 4096, IPC_CREAT | 0600));
	SHOW(shmget(0x10010009, 0, 0));
	SHOW(shmctl(ids[1], IPC_RMID, NULL));
	ids[1] = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	for (int i = 0; i < 3; i++)
		SHOW(shmctl(ids[i], IPC_RMID, NULL));
	return 0;
}
