/* loss.c: being written */
#include "internal.h"
