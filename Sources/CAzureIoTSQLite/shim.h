#ifndef C_AZURE_IOT_SQLITE_H
#define C_AZURE_IOT_SQLITE_H

#include <sqlite3.h>

#endif
