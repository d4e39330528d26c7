/* loss_builtin.c: being written */
#include "internal.h"
