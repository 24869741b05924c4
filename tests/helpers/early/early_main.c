/* early_ctor: prints what libnl_early.so's constructor did, then that main
 * ran ("main ran"), and exits 0. */
#include <stdio.h>

extern char early_report[];

int main(void)
{
    printf("%s\nmain ran\n", early_report);
    return 0;
}
