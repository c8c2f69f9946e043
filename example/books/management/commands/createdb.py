"""Create the database of DATABASE_URL on its server (PostgreSQL, MariaDB/MySQL) when it
does not exist yet; SQLite creates its file by itself."""

import warnings

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

SERVERS = {  # vendor: (name, default port, is the database there?, how to create it by hand)
    "postgresql": (
        "PostgreSQL",
        "5432",
        "SELECT 1 FROM pg_database WHERE datname = %s",
        "createdb -h {host} -p {port} -U {user} {name}",
    ),
    "mysql": (
        "MariaDB/MySQL",
        "3306",
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
        'mariadb -h {host} -P {port} -u {user} -p -e "CREATE DATABASE {name}"',
    ),
}


def _line(error: Exception) -> str:
    return " ".join(str(error).split())  # drivers' messages can span lines


class Command(BaseCommand):
    # Django's system checks ask the database server (Django 6.1's field checks on MySQL
    # read the server's version), which needs the database this command creates.
    requires_system_checks: list[str] = []
    help = "Create the default database on its server if it does not exist yet."

    def handle(self, *args: object, **options: object) -> None:
        if connection.vendor not in SERVERS:
            return
        try:
            connection.ensure_connection()
            return  # it exists
        except DatabaseError as error:
            refused = error
        finally:
            connection.close()
        server, default_port, exists, by_hand = SERVERS[connection.vendor]
        db = connection.settings_dict
        name, host, port = db["NAME"], db["HOST"], db["PORT"] or default_port
        by_hand = by_hand.format(host=host, port=port, user=db["USER"], name=name)
        charset = " CHARACTER SET utf8mb4" if connection.vendor == "mysql" else ""
        try:
            with warnings.catch_warnings():
                # Django's connection to the server without the database (PostgreSQL's
                # "postgres" maintenance database), as its test runner creates databases;
                # not its warning when it falls back to another database.
                warnings.simplefilter("ignore", RuntimeWarning)
                with connection._nodb_cursor() as cursor:
                    cursor.execute(exists, [name])
                    if cursor.fetchone():  # it is there: connecting failed for another reason
                        raise CommandError(f"cannot connect to database {name!r}: {_line(refused)}")
                    cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}{charset}")
        except DatabaseError as error:
            raise CommandError(
                f"cannot create database {name!r} on {server} at {host}:{port} ({_line(error)}); "
                f"create it yourself, e.g. {by_hand}"
            ) from None
        self.stdout.write(f"createdb: created database {name!r} on {server} at {host}:{port}")
