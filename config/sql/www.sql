-- Seed 000's source: contact messages left on the website (scheme contact-to-dingtalk).
-- utf8mb4 so that Chinese names and emoji round-trip.
CREATE DATABASE IF NOT EXISTS `www` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE `www`;

CREATE TABLE IF NOT EXISTS `www_contact` (
  `id`         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `company`    VARCHAR(255)    NOT NULL DEFAULT '',
  `name`       VARCHAR(100)    NOT NULL,
  `phone`      VARCHAR(32)     NOT NULL DEFAULT '',
  `message`    TEXT            NULL,
  `created_at` DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  -- The scheme reads `created_at >= ... AND id > :last_id ORDER BY id`.
  KEY `idx_www_contact_created_at` (`created_at`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A few messages for the demo; fixed ids so that running this file again adds nothing.
INSERT IGNORE INTO `www_contact` (`id`, `company`, `name`, `phone`, `message`) VALUES
  (1, '某某公司', '张三', '13800138000', '想了解数据集成方案'),
  (2, '云朵科技 ☁️', '李四', '13900139000', '请尽快联系我 🙏'),
  (3, 'Acme Ltd', 'Alice O''Brien', '+44 20 7946 0000', 'Pricing for 10 schemes?');
