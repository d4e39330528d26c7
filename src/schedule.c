/* schedule.c: being written */
#include "internal.h"
