#pragma once
#include <mariadb/mysql.h>
// Client (CR_*) and server (ER_*) error numbers the Swift driver reacts to: lost
// connections (2006, 2013, 1927) and duplicate keys (1062).
#include <mariadb/errmsg.h>
#include <mariadb/mysqld_error.h>
