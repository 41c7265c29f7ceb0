"""The operating system around a foreground run: its terminal after a hangup (`terminal`), stop
signals (`signals`) and whether another process is still there (`processes`)."""
