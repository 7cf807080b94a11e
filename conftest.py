pytest_plugins = ["tuoguan_common.testing"]
