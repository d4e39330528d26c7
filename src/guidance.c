/* guidance.c: being written */
#include "internal.h"
